import { describe, expect, it } from 'vitest';
import { looksLikeCredential, REDACTED, redactDetails } from './redact.js';

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

  it('redacts a credential inside a longer string (a user agent, a reason, a pasted header)', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhY2MifQ.c2lnbmF0dXJl';
    const out = redactDetails({
      agent: `curl/8.5 ${jwt}`,
      reason: `token=${jwt} was refused`,
      pasted: 'Authorization: Bearer 9f86d081884c7d659a2feaa0c55ad015',
    });
    expect(out).toEqual({ agent: REDACTED, reason: REDACTED, pasted: REDACTED });
    expect(looksLikeCredential(`Mozilla/5.0 (X11) ${jwt}`)).toBe(true);
    // Words are not credentials.
    expect(redactDetails({ reason: 'missing bearer token', agent: 'Mozilla/5.0 (X11; Linux x86_64)' })).toEqual({ reason: 'missing bearer token', agent: 'Mozilla/5.0 (X11; Linux x86_64)' });
  });

  it('redacts values under snake_case and other token names', () => {
    const out = redactDetails({ access_token: 'opaque-1', refresh_token: 'opaque-2', id_token: 'opaque-3', sessionToken: 'opaque-4', 'x-api-key': 'k', tokenId: 'tok_1' });
    expect(out).toEqual({ access_token: REDACTED, refresh_token: REDACTED, id_token: REDACTED, sessionToken: REDACTED, 'x-api-key': REDACTED, tokenId: 'tok_1' });
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
