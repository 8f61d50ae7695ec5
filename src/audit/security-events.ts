import type { SecurityEvent } from '../security/events/index.js';
import type { AuditEvent, AuditEventType, AuditOutcome } from './events.js';

/**
 * How each security event (services.events) becomes an audit event. Types not listed here are
 * still recorded, as `security.other` naming the original type, so a new event is never lost;
 * add a line here to give it its own audit type.
 */
const MAPPING: Record<string, { type: AuditEventType; outcome: AuditOutcome; buffered?: boolean }> = {
  'signin.succeeded': { type: 'auth.signin.succeeded', outcome: 'success' },
  'signin.failed': { type: 'auth.signin.failed', outcome: 'failure', buffered: true },
  'token.refreshed': { type: 'auth.token.refreshed', outcome: 'success' },
  refresh_token_reused: { type: 'auth.refresh_token_reused', outcome: 'denied' },
  'session.revoked': { type: 'auth.session.revoked', outcome: 'success' },
  'auth.failed': { type: 'auth.failed', outcome: 'denied', buffered: true },
  'role.changed': { type: 'admin.role.changed', outcome: 'success' },
  'key.created': { type: 'admin.key.created', outcome: 'success' },
  'key.updated': { type: 'admin.key.updated', outcome: 'success' },
  'key.regenerated': { type: 'admin.key.regenerated', outcome: 'success' },
  'key.revoked': { type: 'admin.key.revoked', outcome: 'success' },
  'key.suspended': { type: 'admin.key.suspended', outcome: 'success' },
  'key.unsuspended': { type: 'admin.key.unsuspended', outcome: 'success' },
  'key.rotation_due': { type: 'admin.key.rotation_due', outcome: 'success' },
  'ratelimit.suspended': { type: 'security.ratelimit.suspended', outcome: 'denied', buffered: true },
  'ip.blocked': { type: 'admin.ip.blocked', outcome: 'success' },
  'ip.unblocked': { type: 'admin.ip.unblocked', outcome: 'success' },
  'signing_keys.rotated': { type: 'admin.signing_keys.rotated', outcome: 'success' },
};

const BASE_FIELDS = new Set(['type', 'at', 'accountId', 'actorId', 'ip', 'userAgent', 'requestId', 'audited']);

/**
 * The audit event for a security event, and whether it goes through the batch buffer (events an
 * attacker can trigger at will, so a flood costs batches, not one transaction each) or is written
 * at once. Events flagged `audited: true` were already recorded in the transaction of their change.
 */
export function auditEventFor(event: SecurityEvent): { event: AuditEvent; buffered: boolean } | null {
  if ((event as { audited?: unknown }).audited === true) return null;
  const mapped = MAPPING[event.type];
  const details: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(event)) if (!BASE_FIELDS.has(k) && v !== undefined) details[k] = v;
  if (!mapped) details.event = event.type;
  // The actor: an account named in `by`, the admin who acted (`adminId`), or the one the event names.
  const by = typeof details.by === 'string' && details.by.startsWith('acc_') ? details.by : typeof details.adminId === 'string' ? details.adminId : event.actorId;
  const audit = {
    type: mapped?.type ?? 'security.other',
    at: event.at,
    accountId: event.accountId ?? null,
    actorId: by ?? null,
    outcome: mapped?.outcome ?? 'success',
    ip: event.ip ?? null,
    userAgent: event.userAgent ?? null,
    requestId: event.requestId,
    details,
  } as AuditEvent;
  return { event: audit, buffered: mapped?.buffered ?? false };
}
