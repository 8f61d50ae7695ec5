import { describe, expect, it } from 'vitest';
import { REDACTED, redactDetails } from './redact.js';

describe('redactDetails', () => {
  it('redacts values under secret-looking names at any depth', () => {
    const out = redactDetails({ keyId: 'key_1', apiSecret: 's3cr3t', nested: { password: 'p', refreshToken: 'r', authorization: 'Bearer x' }, list: [{ privateKey: 'k' }] });
    expect(out).toEqual({ keyId: 'key_1', apiSecret: REDACTED, nested: { password: REDACTED, refreshToken: REDACTED, authorization: REDACTED }, list: [{ privateKey: REDACTED }] });
  });

  it('redacts values that look like credentials whatever their name', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhY2MifQ.c2lnbmF0dXJl';
    const out = redactDetails({
      note: jwt,
      key: 'md_live_abcdef0123',
      header: 'Bearer abc',
      pem: '-----BEGIN PRIVATE KEY-----\nMII',
      // This server's own secrets, e.g. pasted into a User-Agent or a label.
      agent: 'bot/1.0 mds_4vJ9nq3W8kPz2Lx7Rt5YbHc6MdGf1sEa',
      pasted: 'mdr_Qk3v9X2b7Lm5Np8Rt1Yz4Wc6Hd0Fg2Js7Ka9PeUoIi',
    });
    expect(out).toEqual({ note: REDACTED, key: REDACTED, header: REDACTED, pem: REDACTED, agent: REDACTED, pasted: REDACTED });
  });

  it('keeps identifiers, numbers and decimal strings', () => {
    expect(redactDetails({ orderId: 'ord_1', price: '0.0125', status: 201, ok: true, none: null })).toEqual({ orderId: 'ord_1', price: '0.0125', status: 201, ok: true, none: null });
  });

  it('bounds sizes and drops undefined', () => {
    const out = redactDetails({ long: 'x'.repeat(2000), gone: undefined, many: Array.from({ length: 200 }, (_, i) => i), big: 10n });
    expect((out.long as string).length).toBeLessThan(600);
    expect('gone' in out).toBe(false);
    expect((out.many as number[]).length).toBe(50);
    expect(out.big).toBe('10');
  });
});
