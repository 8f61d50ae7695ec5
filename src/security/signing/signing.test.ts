import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { canonicalMessage, checkTimestamp, describeSigned, ed25519PublicKey, hmacSignatureHex, messageDigest, verifyEd25519, verifyHmac, type CanonicalParts } from './index.js';

interface Vectors {
  secret: string;
  cases: { name: string; timestamp: string; method: string; path: string; body: string; signature: string }[];
}
// A copy of ../shared/vectors/request-signing.json, the contract shared with clients and the SDK.
const vectors = JSON.parse(readFileSync(new URL('../../../test/keys/request-signing.vectors.json', import.meta.url), 'utf8')) as Vectors;

const parts = (c: Vectors['cases'][number]): CanonicalParts => ({ timestamp: c.timestamp, method: c.method, pathWithQuery: c.path, body: c.body });

describe('request-signing vectors', () => {
  it.each(vectors.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(hmacSignatureHex(vectors.secret, parts(c))).toBe(c.signature);
    expect(verifyHmac(vectors.secret, parts(c), c.signature)).toBe(true);
    // The body may be given as its raw bytes as well as a string.
    expect(verifyHmac(Buffer.from(vectors.secret), { ...parts(c), body: Buffer.from(c.body, 'utf8') }, c.signature)).toBe(true);
  });

  it('refuses a signature under another secret', () => {
    const c = vectors.cases[0]!;
    expect(verifyHmac(`${vectors.secret}x`, parts(c), c.signature)).toBe(false);
  });
});

describe('what breaks a signature', () => {
  const secret = vectors.secret;
  const signedGet: CanonicalParts = { timestamp: '1764345600123', method: 'GET', pathWithQuery: '/api/v1/trading/orders?market=MOON-USDC&status=open', body: '' };
  const signedPost: CanonicalParts = { timestamp: '1764345600123', method: 'POST', pathWithQuery: '/api/v1/trading/orders', body: '{"market":"MOON-USDC","quantity":"1"}' };
  const sigGet = hmacSignatureHex(secret, signedGet);
  const sigPost = hmacSignatureHex(secret, signedPost);

  it.each([
    ['a reordered query string', { ...signedGet, pathWithQuery: '/api/v1/trading/orders?status=open&market=MOON-USDC' }],
    ['changed percent-encoding', { ...signedGet, pathWithQuery: '/api/v1/trading/orders?market=MOON%2DUSDC&status=open' }],
    ['a trailing slash', { ...signedGet, pathWithQuery: '/api/v1/trading/orders/?market=MOON-USDC&status=open' }],
    ['method case', { ...signedGet, method: 'get' }],
    ['another timestamp', { ...signedGet, timestamp: '1764345600124' }],
  ])('%s', (_what, changed) => {
    expect(verifyHmac(secret, signedGet, sigGet)).toBe(true);
    expect(verifyHmac(secret, changed, sigGet)).toBe(false);
  });

  it('body whitespace', () => {
    expect(verifyHmac(secret, signedPost, sigPost)).toBe(true);
    expect(verifyHmac(secret, { ...signedPost, body: '{"market": "MOON-USDC","quantity":"1"}' }, sigPost)).toBe(false);
    expect(verifyHmac(secret, { ...signedPost, body: `${signedPost.body as string}\n` }, sigPost)).toBe(false);
  });

  it('accepts only lowercase hex of the right length, so a signature has one spelling', () => {
    expect(verifyHmac(secret, signedGet, sigGet.toUpperCase())).toBe(false);
    expect(verifyHmac(secret, signedGet, sigGet.slice(0, 62))).toBe(false);
    expect(verifyHmac(secret, signedGet, `${sigGet}00`)).toBe(false);
  });
});

describe('ed25519 over the same canonical message', () => {
  const { secretKey, publicKey } = ed25519.keygen();
  const key = ed25519PublicKey(Buffer.from(publicKey).toString('hex'));
  const p: CanonicalParts = { timestamp: '1764345600000', method: 'POST', pathWithQuery: '/api/v1/tokens', body: '{"name":"Lune Rêve 🌙"}' };
  const sig = Buffer.from(ed25519.sign(canonicalMessage(p), secretKey)).toString('hex');

  it('verifies a hex signature and refuses any change', () => {
    expect(verifyEd25519(key, p, sig)).toBe(true);
    expect(verifyEd25519(key, { ...p, body: '{"name":"Lune Reve 🌙"}' }, sig)).toBe(false);
    expect(verifyEd25519(key, { ...p, method: 'post' }, sig)).toBe(false);
    expect(verifyEd25519(key, p, sig.toUpperCase())).toBe(false);
    expect(verifyEd25519(key, p, sig.slice(0, 126))).toBe(false);
  });

  it('refuses a signature by another key', () => {
    const other = ed25519.keygen();
    const forged = Buffer.from(ed25519.sign(canonicalMessage(p), other.secretKey)).toString('hex');
    expect(verifyEd25519(key, p, forged)).toBe(false);
  });
});

describe('canonical message and signed summary', () => {
  it('signs the UTF-8 bytes of the body', () => {
    const msg = canonicalMessage({ timestamp: '1', method: 'POST', pathWithQuery: '/x', body: 'é' });
    expect(Buffer.from(msg).toString('hex')).toBe(Buffer.from('1POST/xé', 'utf8').toString('hex'));
  });

  it('describes what was signed by length and hash, without the body', () => {
    const d = describeSigned({ timestamp: '1', method: 'POST', pathWithQuery: '/x?a=1', body: '🌙' });
    expect(d).toEqual({ timestamp: '1', method: 'POST', path: '/x?a=1', bodyLength: 4, bodySha256: createHash('sha256').update('🌙', 'utf8').digest('hex') });
    expect(JSON.stringify(d)).not.toContain('🌙');
  });

  it('gives one digest per message whatever the body representation', () => {
    const a = messageDigest({ timestamp: '1', method: 'GET', pathWithQuery: '/x', body: '' });
    expect(messageDigest({ timestamp: '1', method: 'GET', pathWithQuery: '/x', body: new Uint8Array(0) })).toBe(a);
    expect(messageDigest({ timestamp: '2', method: 'GET', pathWithQuery: '/x', body: '' })).not.toBe(a);
  });
});

describe('receive window', () => {
  const now = 1_764_345_600_000;
  it('accepts up to the window behind and 1 s ahead', () => {
    expect(checkTimestamp(now, String(now - 5000), undefined)).toEqual({ ok: true });
    expect(checkTimestamp(now, String(now - 5001), undefined)).toEqual({ ok: false, reason: 'too_old' });
    expect(checkTimestamp(now, String(now + 1000), undefined)).toEqual({ ok: true });
    expect(checkTimestamp(now, String(now + 1001), undefined)).toEqual({ ok: false, reason: 'too_far_ahead' });
  });
  it('lets the client widen the window up to 60 s, never beyond', () => {
    expect(checkTimestamp(now, String(now - 60_000), '60000')).toEqual({ ok: true });
    expect(checkTimestamp(now, String(now - 60_001), '60000')).toEqual({ ok: false, reason: 'too_old' });
    expect(checkTimestamp(now, String(now), '60001')).toEqual({ ok: false, reason: 'malformed_window' });
    expect(checkTimestamp(now, String(now), '0')).toEqual({ ok: false, reason: 'malformed_window' });
    expect(checkTimestamp(now, String(now), '5s')).toEqual({ ok: false, reason: 'malformed_window' });
  });
  it('takes one spelling per instant: the canonical decimal, no leading zero (the signed text is the timestamp)', () => {
    // The canonical message and so the replay memory's identity of a request contain the header as
    // sent: two spellings of one instant would be two requests. Only plain decimal is epoch ms.
    expect(checkTimestamp(now, `0${now}`, undefined)).toEqual({ ok: false, reason: 'malformed_timestamp' });
    expect(checkTimestamp(now, `000${now}`, undefined)).toEqual({ ok: false, reason: 'malformed_timestamp' });
    expect(checkTimestamp(now, String(now), undefined)).toEqual({ ok: true });
  });
  it('refuses timestamps that are not epoch milliseconds', () => {
    for (const t of ['', '-1', '1.5', '1e12', ' 1764345600000', '17643456000000000000', '+1764345600000', '01764345600000', '0x19ac8a1a000']) {
      expect(checkTimestamp(now, t, undefined)).toEqual({ ok: false, reason: 'malformed_timestamp' });
    }
  });
});
