import { describe, expect, it } from 'vitest';
import { Keyring } from '../security/crypto/keyring.js';
import { expandRecord, openRecord, sealAccessBatch, sealEvent, type AccessRequestEvent } from './seal.js';
import type { AuditEventsTable } from '../store/schema.js';

const keyring = Keyring.parse(Keyring.generateSpec(1));
const asRow = (sealed: ReturnType<typeof sealEvent>): AuditEventsTable => ({ ...sealed, seq: 1, prev_hash: '', hash: '' }) as unknown as AuditEventsTable;

describe('the user agent in audit records', () => {
  // Node's HTTP parser passes header bytes 0x80–0xFF through as Latin-1, so a client can send the
  // C1 controls U+0080–U+009F (U+009B is the 8-bit CSI that starts a terminal escape sequence, U+0085
  // a line break): the auditor reads the user agent, in a dashboard or a terminal.
  const hostile = 'curl/8.0 \u009b2J\u009b31mALL CLEAR\u0085\tfake line';

  it('keeps no control character, in a security event', () => {
    const sealed = sealEvent({ type: 'auth.login', accountId: 'acc_1', userAgent: hostile, details: {} } as never, keyring, 1_000);
    const ua = openRecord(asRow(sealed), keyring).userAgent!;
    expect(ua).not.toMatch(/\p{Cc}/u);
    expect(ua).toBe('curl/8.0 \ufffd2J\ufffd31mALL CLEAR\ufffd\ufffdfake line');
  });

  it('keeps no control character, in an access batch', () => {
    const event = { type: 'access.request', accountId: 'acc_1', at: 1_000, userAgent: hostile, details: { method: 'GET', route: '/api/v1/account', status: 200, latencyMs: 1 } } as AccessRequestEvent;
    const [view] = expandRecord(openRecord(asRow(sealAccessBatch('acc_1', [event], keyring, 1_000)), keyring));
    expect(view!.userAgent).not.toMatch(/\p{Cc}/u);
  });

  it('leaves an ordinary user agent as it is', () => {
    const sealed = sealEvent({ type: 'auth.login', accountId: 'acc_1', userAgent: 'Mozilla/5.0 (X11; Linux x86_64)', details: {} } as never, keyring, 1_000);
    expect(openRecord(asRow(sealed), keyring).userAgent).toBe('Mozilla/5.0 (X11; Linux x86_64)');
  });
});
