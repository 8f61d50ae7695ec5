/** The audit log's public surface: what other features import. */
export { AuditLog, type AuditFilter, type AuditOptions } from './audit-log.js';
export { accessEvent } from './access.js';
export { anonymizeIp } from './anonymize.js';
export { categoryOf, AUDIT_CATEGORIES, AUDIT_OUTCOMES } from './events.js';
export type { AuditCategory, AuditEvent, AuditEventDetails, AuditEventType, AuditOutcome, AuditRef, AuditValue } from './events.js';
export type { AuditRecordView } from './seal.js';
export type { BrokenRecord, BrokenReason, VerifyReport } from './verify.js';
export type { PurgeResult } from './retention.js';
