import { describe, expect, it } from 'vitest';
import type { SecurityEvent } from '../security/events/index.js';
import { auditEventFor } from './security-events.js';

describe('auditEventFor', () => {
  it('maps a security event to its audit type, keeping context fields out of the details', () => {
    const mapped = auditEventFor({ type: 'signin.succeeded', at: 5, accountId: 'acc_1', ip: '192.0.2.1', userAgent: 'ua', requestId: 'req_1', sessionId: 'ses_1', chain: 'ethereum', wallet: '0xabc' });
    expect(mapped).toEqual({
      buffered: false,
      event: { type: 'auth.signin.succeeded', at: 5, accountId: 'acc_1', actorId: null, outcome: 'success', ip: '192.0.2.1', userAgent: 'ua', requestId: 'req_1', details: { sessionId: 'ses_1', chain: 'ethereum', wallet: '0xabc' } },
    });
  });

  it('buffers events an attacker can trigger at will and marks refusals denied', () => {
    expect(auditEventFor({ type: 'auth.failed', at: 1, code: 'invalid_token' })).toMatchObject({ buffered: true, event: { type: 'auth.failed', outcome: 'denied' } });
    expect(auditEventFor({ type: 'signin.failed', at: 1, reason: 'bad signature' })).toMatchObject({ buffered: true, event: { outcome: 'failure' } });
  });

  it('takes an account id in `by` as the actor', () => {
    expect(auditEventFor({ type: 'role.changed', at: 1, accountId: 'acc_2', from: 'trader', to: 'admin', by: 'acc_admin' })?.event).toMatchObject({ accountId: 'acc_2', actorId: 'acc_admin' });
    expect(auditEventFor({ type: 'role.changed', at: 1, accountId: 'acc_2', from: 'trader', to: 'admin', by: 'cli' })?.event.actorId).toBeNull();
  });

  it('records an unmapped type as security.other rather than losing it', () => {
    const e = { type: 'something.new', at: 1, detail: 'x' } as unknown as SecurityEvent;
    expect(auditEventFor(e)?.event).toMatchObject({ type: 'security.other', details: { event: 'something.new', detail: 'x' } });
  });

  it('skips events the emitter already recorded in its own transaction', () => {
    expect(auditEventFor({ type: 'key.revoked', at: 1, keyId: 'key_1', audited: true })).toBeNull();
  });
});
