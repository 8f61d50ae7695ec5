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
  const userAgent = event.userAgent ? (looksLikeCredential(event.userAgent) ? '[redacted]' : event.userAgent.slice(0, MAX_USER_AGENT)) : null;
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
