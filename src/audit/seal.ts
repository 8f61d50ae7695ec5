import { newId } from '../lib/ids.js';
import type { Keyring } from '../security/crypto/keyring.js';
import type { AuditEventsTable } from '../store/schema.js';
import type { SealedRecord } from './chain.js';
import { categoryOf, type AuditCategory, type AuditEvent, type AuditOutcome, type AuditValue } from './events.js';
import { looksLikeCredential, redactDetails } from './redact.js';

const MAX_USER_AGENT = 256;

/** AAD of an encrypted field: the record id and the field, so a ciphertext cannot move to another record or field. */
export function fieldAad(id: string, field: 'details' | 'ip' | 'user_agent'): string {
  return `${id}|${field}`;
}

/**
 * Turns an event into the row to store: redacted details (with the request id) and the client
 * address and user agent encrypted with the keyring; time, type, category, accounts and outcome
 * stay clear so they can be filtered.
 */
export function sealEvent(event: AuditEvent, keyring: Keyring, now: number): SealedRecord {
  const at = event.at ?? now;
  const id = newId('aud', at);
  const details = redactDetails(event.details);
  if (event.requestId) details.requestId = event.requestId;
  const userAgent = safeUserAgent(event.userAgent);
  return {
    id,
    at,
    type: event.type,
    category: categoryOf(event.type),
    account_id: event.accountId ?? null,
    actor_id: event.actorId ?? null,
    outcome: event.outcome ?? 'success',
    details_enc: keyring.encrypt(JSON.stringify(details), fieldAad(id, 'details')),
    ip_enc: event.ip ? keyring.encrypt(event.ip, fieldAad(id, 'ip')) : null,
    user_agent_enc: userAgent ? keyring.encrypt(userAgent, fieldAad(id, 'user_agent')) : null,
  };
}

/** An API access event, as access.ts makes them. */
export type AccessRequestEvent = Extract<AuditEvent, { type: 'access.request' }>;

/**
 * The fields of one entry of an `access.batch` record, in order. The list is stored in every record,
 * so a record stays readable when the list grows.
 */
export const ACCESS_FIELDS = ['at', 'outcome', 'requestId', 'method', 'route', 'status', 'latencyMs', 'keyId', 'sessionId', 'ip', 'userAgent'] as const;

/** Longest time one `access.batch` record spans: its `at` is its first entry's, the last is at most this much later. */
export const ACCESS_BATCH_SPAN_MS = 60_000;
/** Most entries in one `access.batch` record. */
export const ACCESS_BATCH_MAX = 1000;

/** Control characters: Node passes header bytes 0x80–0xFF as Latin-1, so C1 controls (U+009B, a terminal's CSI) arrive too. */
const CONTROL = /\p{Cc}/gu;

/**
 * The user agent as stored: a credential-looking one redacted, at most 256 characters, and every
 * control character (tab, C1) shown as U+FFFD, since the auditor reads it, in a dashboard or a terminal.
 */
function safeUserAgent(userAgent: string | null | undefined): string | null {
  if (!userAgent) return null;
  return looksLikeCredential(userAgent) ? '[redacted]' : userAgent.slice(0, MAX_USER_AGENT).replace(CONTROL, '\ufffd');
}

/**
 * Seals the access events of one account (or of anonymous callers: `accountId` null) as one record:
 * one id, one encryption, one link in the chain for the lot, where one record per request would
 * cost three encryptions, a hash and an indexed row each, on every request. Each entry keeps what a
 * per-request record held (time, outcome, request id, method, route pattern, status, latency, key or
 * session id, anonymized network, user agent), all inside the encrypted details; the record's clear
 * columns keep the account, the category (`access`) and the first entry's time, so the auditor's
 * filters still find it. Entries are built by access.ts from the route pattern and ids only; the
 * user agent, the one client-chosen value, is checked for credentials and truncated.
 */
export function sealAccessBatch(accountId: string | null, events: readonly AccessRequestEvent[], keyring: Keyring, now: number): SealedRecord {
  const at = events[0]?.at ?? now;
  const id = newId('aud', at);
  const entries = events.map((e) => [
    e.at ?? now,
    e.outcome ?? 'success',
    e.requestId ?? null,
    e.details.method,
    e.details.route,
    e.details.status,
    e.details.latencyMs,
    e.details.keyId ?? null,
    e.details.sessionId ?? null,
    e.ip ?? null,
    safeUserAgent(e.userAgent),
  ]);
  const outcome = events.every((e) => (e.outcome ?? 'success') === 'success') ? 'success' : events.some((e) => e.outcome === 'denied') ? 'denied' : 'failure';
  return {
    id,
    at,
    type: 'access.batch',
    category: 'access',
    account_id: accountId,
    actor_id: null,
    outcome,
    details_enc: keyring.encrypt(JSON.stringify({ fields: ACCESS_FIELDS, entries }), fieldAad(id, 'details')),
    ip_enc: null,
    user_agent_enc: null,
  };
}

/**
 * The auditor's views of one stored record: itself, or, for an `access.batch` record, one
 * `access.request` view per entry, in the order they were recorded (`id` is the record's id and the
 * entry's index; `seq`, `hash` and `prevHash` are the record's, which the chain protects). A batch
 * record that does not decrypt is shown as itself, unreadable, so a broken record is never hidden.
 */
export function expandRecord(view: AuditRecordView): AuditRecordView[] {
  if (view.type !== 'access.batch' || view.details === null) return [view];
  const { fields, entries } = view.details as { fields?: unknown; entries?: unknown };
  if (!Array.isArray(fields) || !Array.isArray(entries)) return [{ ...view, readable: false }];
  const col = (name: (typeof ACCESS_FIELDS)[number]) => fields.indexOf(name);
  const c = Object.fromEntries(ACCESS_FIELDS.map((f) => [f, col(f)])) as Record<(typeof ACCESS_FIELDS)[number], number>;
  const pick = (entry: readonly AuditValue[], name: (typeof ACCESS_FIELDS)[number]): AuditValue | undefined => (c[name] < 0 ? undefined : entry[c[name]]);
  return (entries as AuditValue[][]).map((entry, i) => {
    const details: Record<string, AuditValue> = {
      method: pick(entry, 'method') ?? null,
      route: pick(entry, 'route') ?? null,
      status: pick(entry, 'status') ?? null,
      latencyMs: pick(entry, 'latencyMs') ?? null,
    };
    const keyId = pick(entry, 'keyId');
    const sessionId = pick(entry, 'sessionId');
    const requestId = pick(entry, 'requestId');
    if (typeof keyId === 'string') details.keyId = keyId;
    if (typeof sessionId === 'string') details.sessionId = sessionId;
    if (typeof requestId === 'string') details.requestId = requestId;
    const outcome = pick(entry, 'outcome');
    const at = pick(entry, 'at');
    const ip = pick(entry, 'ip');
    const userAgent = pick(entry, 'userAgent');
    return {
      ...view,
      id: `${view.id}.${i}`,
      at: typeof at === 'number' ? at : view.at,
      type: 'access.request',
      outcome: outcome === 'success' || outcome === 'failure' || outcome === 'denied' ? outcome : view.outcome,
      details,
      ip: typeof ip === 'string' ? ip : null,
      userAgent: typeof userAgent === 'string' ? userAgent : null,
      entry: i,
    };
  });
}

/** A stored record as an auditor reads it. */
export interface AuditRecordView {
  id: string;
  seq: number;
  at: number;
  type: string;
  category: AuditCategory;
  accountId: string | null;
  actorId: string | null;
  outcome: AuditOutcome;
  /** Null when the ciphertext no longer authenticates (tampered, or its key is gone). */
  details: Record<string, AuditValue> | null;
  ip: string | null;
  userAgent: string | null;
  /** False when a sensitive field could not be decrypted. */
  readable: boolean;
  prevHash: string;
  hash: string;
  /** For an API access event: its index inside the `access.batch` record that holds it (see expandRecord). */
  entry?: number;
}

export function openRecord(row: AuditEventsTable, keyring: Keyring): AuditRecordView {
  let readable = true;
  const open = (blob: string | null, field: 'details' | 'ip' | 'user_agent'): string | null => {
    if (blob === null) return null;
    try {
      return keyring.decrypt(blob, fieldAad(row.id, field));
    } catch {
      readable = false;
      return null;
    }
  };
  const detailsText = open(row.details_enc, 'details');
  let details: Record<string, AuditValue> | null = null;
  if (detailsText !== null) {
    try {
      details = JSON.parse(detailsText) as Record<string, AuditValue>;
    } catch {
      readable = false;
    }
  }
  return {
    id: row.id,
    seq: Number(row.seq),
    at: Number(row.at),
    type: row.type,
    category: row.category as AuditCategory,
    accountId: row.account_id,
    actorId: row.actor_id,
    outcome: row.outcome as AuditOutcome,
    details,
    ip: open(row.ip_enc, 'ip'),
    userAgent: open(row.user_agent_enc, 'user_agent'),
    readable,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
