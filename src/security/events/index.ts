import { EventEmitter } from 'node:events';

/**
 * Security events: one typed stream that features emit into and that the audit log and threat
 * detection subscribe to. Emitting never throws into the caller; a failing subscriber is reported
 * through `onSubscriberError`.
 */
export interface SecurityEventBase {
  /** Epoch ms. */
  at: number;
  accountId?: string | undefined;
  ip?: string | undefined;
  userAgent?: string | undefined;
  requestId?: string | undefined;
  /** The account that acted, when neither `by` nor `adminId` names it (the audit record's actorId). */
  actorId?: string | undefined;
  /** True when the emitter already wrote this event to the audit log in its own transaction (services.audit.recordIn); the audit subscriber then skips it. */
  audited?: boolean | undefined;
}

export type SecurityEvent = SecurityEventBase &
  (
    | { type: 'signin.succeeded'; sessionId: string; chain: string; wallet: string }
    | { type: 'signin.failed'; reason: string; wallet?: string | undefined }
    | { type: 'token.refreshed'; sessionId: string }
    | { type: 'refresh_token_reused'; sessionId: string }
    | { type: 'session.revoked'; sessionId: string; by: 'logout' | 'user' | 'admin' | 'reuse' | 'limit'; /** The admin's account, when by is admin. */ adminId?: string | undefined; /** The session used to revoke it, when a person or admin did. */ bySessionId?: string | undefined }
    | { type: 'role.changed'; from: string; to: string; by: string }
    | { type: 'auth.failed'; code: string; keyId?: string | undefined }
    | { type: 'key.created' | 'key.updated' | 'key.regenerated' | 'key.revoked' | 'key.suspended' | 'key.unsuspended' | 'key.rotation_due'; keyId: string; by?: string | undefined }
    | { type: 'ratelimit.suspended'; category: string; subject: string; untilMs: number }
    | { type: 'ip.blocked' | 'ip.unblocked'; target: string; reason: string; by?: string | undefined }
    | { type: 'signing_keys.rotated'; kid: string }
    | { type: 'ratelimit.limits_changed'; limits: Record<string, number>; by: string }
  );

export type SecurityEventType = SecurityEvent['type'];

export class SecurityEvents {
  private readonly emitter = new EventEmitter();
  onSubscriberError: (err: unknown, event: SecurityEvent) => void = () => {};

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  emit(event: SecurityEvent): void {
    for (const listener of this.emitter.listeners('event') as ((e: SecurityEvent) => void | Promise<void>)[]) {
      try {
        const r = listener(event);
        if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch((err) => this.onSubscriberError(err, event));
      } catch (err) {
        this.onSubscriberError(err, event);
      }
    }
  }

  subscribe(listener: (event: SecurityEvent) => void | Promise<void>): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
