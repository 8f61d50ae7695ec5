import { request as httpRequest } from 'node:http';
import { ed25519 } from '@noble/curves/ed25519.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import type { SecurityEvent } from '../../src/security/events/index.js';
import { code, createKey, credentialOf, session, signatureFor, signed, signedInject, startKeysServer, type CreatedKey, type Credential, type KeysTestServer } from './support.js';

const clock = new ManualClock(Date.UTC(2026, 2, 1));
let ks: KeysTestServer;
let owner: Awaited<ReturnType<typeof session>>;
let key: CreatedKey;
let cred: Credential;

beforeAll(async () => {
  ks = await startKeysServer({ clock });
  owner = await session(ks);
  key = await createKey(ks, owner.headers, { label: 'bot', scopes: ['market:read', 'account:read', 'orders:read', 'orders:write'] });
  cred = credentialOf(key);
});
afterAll(() => ks.close());

describe('a valid signed request', () => {
  it('authenticates as the key, with its scopes, signed', async () => {
    const res = await signed(ks, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{"note":"hi"}' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ kind: 'apiKey', accountId: owner.account.id, keyId: key.id, scopes: ['market:read', 'account:read', 'orders:read', 'orders:write'], signed: true, role: 'trader' });
  });

  it('works on a real route (GET /api/v1/account)', async () => {
    const res = await signed(ks, cred, { url: '/api/v1/account' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: owner.account.id, role: 'trader' });
  });

  it('signs the query string exactly as sent', async () => {
    const res = await signed(ks, cred, { url: '/api/v1/trading/probe?market=MOON-USDC&status=open&x=%2Fa' });
    expect(res.statusCode).toBe(200);
  });

  it('over a real socket: the request target and body bytes exactly as sent', async () => {
    const address = await ks.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { port } = new URL(address);
      const send = (target: string, body: string, signedTarget = target) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const timestamp = String(clock.now());
          const req = httpRequest(
            {
              host: '127.0.0.1',
              port,
              method: 'POST',
              path: target,
              headers: { 'content-type': 'application/json', 'x-api-key': cred.apiKey, 'x-api-timestamp': timestamp, 'x-api-signature': signatureFor(cred, timestamp, 'POST', signedTarget, body) },
            },
            (res) => {
              let data = '';
              res.on('data', (c) => (data += c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      expect((await send('/api/v1/trading/probe?z=1&a=%2f&e=%C3%A9', '{ "note" : "Rêve" }')).status).toBe(200);
      const r = await send('/api/v1/trading/probe?z=1&a=%2F', '{"note":"x"}', '/api/v1/trading/probe?z=1&a=%2f');
      expect(JSON.parse(r.body).code).toBe('invalid_signature');
    } finally {
      await ks.app.server.close();
    }
  });
});

describe('what breaks a signature over HTTP', () => {
  it.each([
    ['a reordered query string', { url: '/api/v1/trading/probe?b=2&a=1', sign: { url: '/api/v1/trading/probe?a=1&b=2' } }],
    ['changed percent-encoding', { url: '/api/v1/trading/probe?x=%2F', sign: { url: '/api/v1/trading/probe?x=%2f' } }],
    ['a trailing slash', { url: '/api/v1/trading/probe', sign: { url: '/api/v1/trading/probe/' } }],
    ['method case', { url: '/api/v1/trading/probe', sign: { method: 'get' } }],
  ])('%s → invalid_signature', async (_what, o) => {
    const res = await signed(ks, cred, o);
    expect(code(res)).toBe('invalid_signature');
  });

  it('body whitespace → invalid_signature', async () => {
    const res = await signed(ks, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{"note": "hi"}', sign: { body: '{"note":"hi"}' } });
    expect(code(res)).toBe('invalid_signature');
  });

  it('names what the server signed, and never a secret or the signature', async () => {
    const body = '{"note":"Lune Rêve 🌙"}';
    const opts = signedInject(ks, cred, { method: 'POST', url: '/api/v1/trading/probe?a=1', body, sign: { body: '{}' } });
    const res = await ks.app.inject(opts);
    expect(res.statusCode).toBe(401);
    const problem = res.json();
    expect(problem.code).toBe('invalid_signature');
    expect(problem.signed).toEqual({
      timestamp: (opts.headers as Record<string, string>)['x-api-timestamp'],
      method: 'POST',
      path: '/api/v1/trading/probe?a=1',
      bodyLength: Buffer.byteLength(body),
      bodySha256: (await import('node:crypto')).createHash('sha256').update(body).digest('hex'),
    });
    expect(res.body).not.toContain(cred.secret!);
    expect(res.body).not.toContain((opts.headers as Record<string, string>)['x-api-signature']);
  });

  it('refuses an uppercase-hex copy of a valid signature', async () => {
    const opts = signedInject(ks, cred, { url: '/api/v1/trading/probe' });
    const headers = opts.headers as Record<string, string>;
    const res = await ks.app.inject({ ...opts, headers: { ...headers, 'x-api-signature': headers['x-api-signature']!.toUpperCase() } });
    expect(code(res)).toBe('invalid_signature');
  });
});

describe('refusal codes', () => {
  it('invalid_api_key: malformed or unknown', async () => {
    expect(code(await signed(ks, { apiKey: 'nope', secret: 'x' }, { url: '/api/v1/trading/probe' }))).toBe('invalid_api_key');
    expect(code(await signed(ks, { apiKey: `md_test_${'A'.repeat(32)}`, secret: 'x' }, { url: '/api/v1/trading/probe' }))).toBe('invalid_api_key');
  });

  it('wrong_environment: a live key on a sandbox server', async () => {
    const res = await signed(ks, { apiKey: `md_live_${'A'.repeat(32)}`, secret: 'x' }, { url: '/api/v1/trading/probe' });
    expect(code(res)).toBe('wrong_environment');
    expect(res.json().detail).toContain('md_test_');
  });

  it('key_revoked', async () => {
    const k = await createKey(ks, owner.headers, { label: 'to revoke', scopes: ['orders:read'] });
    expect((await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    expect((await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${k.id}`, headers: owner.headers })).statusCode).toBe(200);
    expect(code(await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe' }))).toBe('key_revoked');
  });

  it('key_suspended, and back after unsuspend', async () => {
    const admin = await sessionFor(ks.server, { role: 'admin' });
    const k = await createKey(ks, owner.headers, { label: 'to suspend', scopes: ['orders:read'] });
    const s = await ks.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${k.id}/suspend`, headers: admin.headers, payload: { reason: 'investigation' } });
    expect(s.statusCode).toBe(200);
    expect(s.json()).toMatchObject({ status: 'suspended', suspendedReason: 'investigation' });
    const refused = await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe' });
    expect(code(refused)).toBe('key_suspended');
    expect(refused.statusCode).toBe(403);
    const u = await ks.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${k.id}/unsuspend`, headers: admin.headers, payload: {} });
    expect(u.json().status).toBe('active');
    expect((await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
  });

  it('key_expired', async () => {
    const k = await createKey(ks, owner.headers, { label: 'short', scopes: ['orders:read'], expiresInDays: 1 });
    const start = clock.now();
    expect((await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    clock.advance(86_400_000);
    try {
      expect(code(await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe' }))).toBe('key_expired');
    } finally {
      clock.set(start);
    }
  });

  it('signature_required: unsigned outside market data, before scope is revealed', async () => {
    expect(code(await signed(ks, cred, { url: '/api/v1/trading/probe', unsigned: true }))).toBe('signature_required');
    // The key lacks withdrawals:write, yet an unsigned request learns only that it must sign.
    expect(code(await signed(ks, cred, { method: 'POST', url: '/api/v1/account/withdrawals/probe', body: '{}', unsigned: true }))).toBe('signature_required');
  });

  it('timestamp_out_of_window: too old, too far ahead, a wider window allowed up to 60 s', async () => {
    const now = clock.now();
    const old = await signed(ks, cred, { url: '/api/v1/trading/probe', timestamp: now - 5001 });
    expect(code(old)).toBe('timestamp_out_of_window');
    expect(old.json().serverTime).toBe(now);
    expect(code(await signed(ks, cred, { url: '/api/v1/trading/probe', timestamp: now + 1001 }))).toBe('timestamp_out_of_window');
    expect((await signed(ks, cred, { url: '/api/v1/trading/probe', timestamp: now + 1000 })).statusCode).toBe(200);
    expect((await signed(ks, cred, { url: '/api/v1/trading/probe', timestamp: now - 30_000, recvWindow: '30000' })).statusCode).toBe(200);
    expect(code(await signed(ks, cred, { url: '/api/v1/trading/probe', timestamp: now - 60_001, recvWindow: '60000' }))).toBe('timestamp_out_of_window');
    expect(code(await signed(ks, cred, { url: '/api/v1/trading/probe', recvWindow: '60001' }))).toBe('validation_failed');
    expect(code(await signed(ks, cred, { url: '/api/v1/trading/probe', timestamp: 'yesterday' }))).toBe('validation_failed');
  });

  it('validation_failed: a signature without its timestamp', async () => {
    const opts = signedInject(ks, cred, { url: '/api/v1/trading/probe' });
    const { ['x-api-timestamp']: _dropped, ...headers } = opts.headers as Record<string, string>;
    expect(code(await ks.app.inject({ ...opts, headers }))).toBe('validation_failed');
  });

  it('replayed_request: the same signed request twice', async () => {
    const opts = signedInject(ks, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":1}' });
    expect((await ks.app.inject(opts)).statusCode).toBe(200);
    const again = await ks.app.inject(opts);
    expect(code(again)).toBe('replayed_request');
    // …also when the attacker asks for a wider receive window (that header is not signed).
    const wider = await ks.app.inject({ ...opts, headers: { ...(opts.headers as Record<string, string>), 'x-api-recv-window': '60000' } });
    expect(code(wider)).toBe('replayed_request');
  });

  it('insufficient_scope', async () => {
    const res = await signed(ks, cred, { method: 'POST', url: '/api/v1/account/withdrawals/probe', body: '{}' });
    expect(code(res)).toBe('insufficient_scope');
  });

  it('forbidden_role: a developer key on a trading route', async () => {
    const dev = await session(ks, { role: 'developer' });
    const k = await createKey(ks, dev.headers, { label: 'dev', scopes: ['market:read', 'orders:read'] });
    expect(code(await signed(ks, credentialOf(k), { method: 'POST', url: '/api/v1/trading/probe', body: '{}' }))).toBe('forbidden_role');
  });

  it('session_required: an API key can never create, widen, regenerate or list keys', async () => {
    const attempts = [
      { method: 'POST', url: '/api/v1/keys', body: JSON.stringify({ label: 'x', scopes: ['market:read'] }) },
      { method: 'PATCH', url: `/api/v1/keys/${key.id}`, body: JSON.stringify({ scopes: ['market:read', 'orders:write', 'withdrawals:write'] }) },
      { method: 'POST', url: `/api/v1/keys/${key.id}/regenerate`, body: '{}' },
      { method: 'GET', url: '/api/v1/keys' },
      { method: 'DELETE', url: `/api/v1/keys/${key.id}` },
      { method: 'GET', url: '/api/v1/security/checklist' },
    ];
    for (const a of attempts) {
      const res = await signed(ks, cred, a);
      expect(res.statusCode, `${a.method} ${a.url}`).toBe(403);
      expect(code(res)).toBe('session_required');
    }
    // The key is unchanged.
    const after = await ks.app.inject({ method: 'GET', url: `/api/v1/keys/${key.id}`, headers: owner.headers });
    expect(after.json()).toMatchObject({ status: 'active', scopes: key.scopes });
  });
});

describe('refusals are security events', () => {
  it('emits auth.failed with the code and key id, and no credential', async () => {
    const seen: SecurityEvent[] = [];
    const stop = ks.server.services.events.subscribe((e) => void seen.push(e));
    try {
      const opts = signedInject(ks, cred, { url: '/api/v1/trading/probe', sign: { url: '/elsewhere' } });
      await ks.app.inject(opts);
      const event = seen.find((e) => e.type === 'auth.failed');
      expect(event).toMatchObject({ type: 'auth.failed', code: 'invalid_signature', keyId: key.id, accountId: owner.account.id, ip: '127.0.0.1' });
      const text = JSON.stringify(seen);
      expect(text).not.toContain(cred.apiKey);
      expect(text).not.toContain((opts.headers as Record<string, string>)['x-api-signature']);
    } finally {
      stop();
    }
  });
});

describe('the order of the checks', () => {
  it('key before environment before network before timestamp before signature before replay', async () => {
    const k = await createKey(ks, owner.headers, { label: 'order', scopes: ['orders:read'], ipWhitelist: ['198.51.100.0/24'] });
    const c = credentialOf(k);
    const url = '/api/v1/trading/probe';
    const badEverything = { url, remoteAddress: '203.0.113.1', timestamp: clock.now() - 999_999, sign: { url: '/other' } };
    // network refuses before timestamp and signature
    expect(code(await signed(ks, c, badEverything))).toBe('ip_not_allowed');
    // from an allowed address: timestamp refuses before signature
    expect(code(await signed(ks, c, { ...badEverything, remoteAddress: '198.51.100.7' }))).toBe('timestamp_out_of_window');
    // good timestamp: signature
    expect(code(await signed(ks, c, { url, remoteAddress: '198.51.100.7', sign: { url: '/other' } }))).toBe('invalid_signature');
    // revoked: the key check answers first, whatever else is wrong
    await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${k.id}`, headers: owner.headers });
    expect(code(await signed(ks, c, badEverything))).toBe('key_revoked');
  });

  it('a bad signature is not remembered: the correct request still goes through', async () => {
    const ts = clock.now() - 7;
    expect(code(await signed(ks, cred, { url: '/api/v1/trading/probe', timestamp: ts, sign: { url: '/x' } }))).toBe('invalid_signature');
    expect((await signed(ks, cred, { url: '/api/v1/trading/probe', timestamp: ts })).statusCode).toBe(200);
  });
});

describe('market data', () => {
  it('accepts X-API-Key alone, as an unsigned principal', async () => {
    const res = await signed(ks, cred, { url: '/api/v1/market/probe', unsigned: true });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ kind: 'apiKey', signed: false });
  });

  it('still verifies a signature when one is sent', async () => {
    expect(code(await signed(ks, cred, { url: '/api/v1/market/probe', sign: { url: '/api/v1/market/other' } }))).toBe('invalid_signature');
    const ok = await signed(ks, cred, { url: '/api/v1/market/probe' });
    expect(ok.json()).toMatchObject({ signed: true });
  });

  it('still applies the key checks (a revoked key cannot read market data)', async () => {
    const k = await createKey(ks, owner.headers, { label: 'market', scopes: ['market:read'] });
    await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${k.id}`, headers: owner.headers });
    expect(code(await signed(ks, credentialOf(k), { url: '/api/v1/market/probe', unsigned: true }))).toBe('key_revoked');
  });

  it('needs the market:read scope', async () => {
    const k = await createKey(ks, owner.headers, { label: 'no market', scopes: ['orders:read'] });
    expect(code(await signed(ks, credentialOf(k), { url: '/api/v1/market/probe', unsigned: true }))).toBe('insufficient_scope');
  });
});

describe('ed25519 keys', () => {
  it('verify with the registered public key; the server holds no secret', async () => {
    const { secretKey, publicKey } = ed25519.keygen();
    const k = await createKey(ks, owner.headers, { label: 'ed', type: 'ed25519', publicKey: Buffer.from(publicKey).toString('hex'), scopes: ['orders:write'] });
    expect(k.apiSecret).toBeUndefined();
    expect(k.publicKey).toBe(Buffer.from(publicKey).toString('hex'));
    const c: Credential = { apiKey: k.apiKey, edSecretKey: secretKey };
    const res = await signed(ks, c, { method: 'POST', url: '/api/v1/trading/probe', body: '{"note":"ed"}' });
    expect(res.statusCode).toBe(200);
    expect(code(await signed(ks, c, { method: 'POST', url: '/api/v1/trading/probe', body: '{"note":"ed"}', sign: { body: '{"note":"ee"}' } }))).toBe('invalid_signature');
    const other = ed25519.keygen();
    expect(code(await signed(ks, { apiKey: k.apiKey, edSecretKey: other.secretKey }, { url: '/api/v1/trading/probe', method: 'POST', body: '{}' }))).toBe('invalid_signature');
    const row = await ks.server.services.store.db.selectFrom('api_keys').selectAll().where('id', '=', k.id).executeTakeFirstOrThrow();
    expect(row.secret_enc).toBeNull();
  });
});

describe('IP whitelist and countries', () => {
  it('ip_not_allowed outside the whitelist, IPv4 and IPv6, IPv4-mapped normalised', async () => {
    const k = await createKey(ks, owner.headers, { label: 'ips', scopes: ['orders:read'], ipWhitelist: ['198.51.100.0/24', '2001:db8::/32'] });
    const c = credentialOf(k);
    const url = '/api/v1/trading/probe';
    expect((await signed(ks, c, { url, remoteAddress: '198.51.100.200' })).statusCode).toBe(200);
    expect((await signed(ks, c, { url, remoteAddress: '::ffff:198.51.100.9' })).statusCode).toBe(200);
    expect((await signed(ks, c, { url, remoteAddress: '2001:db8:1::1' })).statusCode).toBe(200);
    expect(code(await signed(ks, c, { url, remoteAddress: '198.51.101.1' }))).toBe('ip_not_allowed');
    expect(code(await signed(ks, c, { url, remoteAddress: '2001:db9::1' }))).toBe('ip_not_allowed');
    expect(code(await signed(ks, c, { url }))).toBe('ip_not_allowed'); // 127.0.0.1
  });

  it('an IPv6 range in the whitelist does not admit IPv4 clients (::/16 holds the IPv4-mapped block)', async () => {
    // A withdrawal key must be bound to addresses no wider than /8 (IPv4) or /16 (IPv6): ::/16 passes
    // that rule, so it must not quietly admit every IPv4 address.
    const k = await createKey(ks, owner.headers, { label: 'v6 only', scopes: ['orders:read', 'withdrawals:write'], ipWhitelist: ['::/16'] });
    const c = credentialOf(k);
    expect(code(await signed(ks, c, { url: '/api/v1/trading/probe', remoteAddress: '203.0.113.5' }))).toBe('ip_not_allowed');
    expect(code(await signed(ks, c, { method: 'POST', url: '/api/v1/account/withdrawals/probe', body: '{}', remoteAddress: '198.51.100.77' }))).toBe('ip_not_allowed');
    expect((await signed(ks, c, { url: '/api/v1/trading/probe', remoteAddress: '::1:2' })).statusCode).toBe(200);
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    const k = await createKey(ks, owner.headers, { label: 'xff', scopes: ['orders:read'], ipWhitelist: ['198.51.100.7'] });
    const res = await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe', remoteAddress: '203.0.113.50', headers: { 'x-forwarded-for': '198.51.100.7' } });
    expect(code(res)).toBe('ip_not_allowed');
  });

  it('country_not_allowed for other countries and for addresses of unknown country', async () => {
    const k = await createKey(ks, owner.headers, { label: 'gb only', scopes: ['orders:read'], allowedCountries: ['gb'] });
    expect(k.allowedCountries).toEqual(['GB']);
    const c = credentialOf(k);
    const url = '/api/v1/trading/probe';
    expect((await signed(ks, c, { url, remoteAddress: '81.2.69.142' })).statusCode).toBe(200);
    expect(code(await signed(ks, c, { url, remoteAddress: '8.8.8.8' }))).toBe('country_not_allowed');
    expect(code(await signed(ks, c, { url, remoteAddress: '10.0.0.1' }))).toBe('country_not_allowed');
    expect(code(await signed(ks, c, { url, remoteAddress: '192.168.1.1' }))).toBe('country_not_allowed');
  });

  it('does not tell a caller without the secret which countries the key accepts', async () => {
    const k = await createKey(ks, owner.headers, { label: 'se only', scopes: ['orders:read'], allowedCountries: ['SE', 'NO'] });
    // A bare key (say, leaked from a log), unsigned, from elsewhere: the refusal must not say
    // where to go (which VPN exit) to get past the country rule.
    for (const remoteAddress of ['8.8.8.8', '10.0.0.1']) {
      const res = await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe', remoteAddress, unsigned: true });
      expect(code(res)).toBe('country_not_allowed');
      expect(res.body).not.toMatch(/\bSE\b|\bNO\b/);
    }
  });
});

describe('regeneration grace period', () => {
  it('keeps the old secret valid for the grace period only', async () => {
    const k = await createKey(ks, owner.headers, { label: 'rotate', scopes: ['orders:read'] });
    const oldCred = credentialOf(k);
    const res = await ks.app.inject({ method: 'POST', url: `/api/v1/keys/${k.id}/regenerate`, headers: owner.headers, payload: { gracePeriodSeconds: 3600 } });
    expect(res.statusCode).toBe(200);
    const regenerated = res.json();
    expect(regenerated.apiSecret).toMatch(/^mds_/);
    expect(regenerated.apiSecret).not.toBe(k.apiSecret);
    expect(regenerated.previousCredentialValidUntil).toBe(clock.now() + 3_600_000);
    const newCred = { apiKey: k.apiKey, secret: regenerated.apiSecret as string };
    const url = '/api/v1/trading/probe';
    expect((await signed(ks, newCred, { url })).statusCode).toBe(200);
    expect((await signed(ks, oldCred, { url })).statusCode).toBe(200);
    const start = clock.now();
    clock.advance(3_600_000);
    try {
      expect(code(await signed(ks, oldCred, { url }))).toBe('invalid_signature');
      expect((await signed(ks, newCred, { url })).statusCode).toBe(200);
    } finally {
      clock.set(start);
    }
  });

  it('the grace period never outlives the old credential: an expired key regenerated with one does not come back', async () => {
    const k = await createKey(ks, owner.headers, { label: 'lapsed', scopes: ['orders:read'], expiresInDays: 1 });
    const url = '/api/v1/trading/probe';
    const start = clock.now();
    try {
      // An hour before expiry: the old secret keeps that hour, not the 24 h asked.
      clock.advance(23 * 3_600_000);
      let fresh = await session(ks, { wallet: owner.account.wallet }); // the first session's access token has expired by now
      const near = await ks.app.inject({ method: 'POST', url: `/api/v1/keys/${k.id}/regenerate`, headers: fresh.headers, payload: { gracePeriodSeconds: 86_400 } });
      expect(near.json(), near.body).toMatchObject({ previousCredentialValidUntil: start + 24 * 3_600_000 });
      const second = { apiKey: k.apiKey, secret: near.json().apiSecret as string };
      // Past the new credential's expiry too: regenerated with a grace, the dead one stays dead.
      clock.advance(2 * 86_400_000);
      expect(code(await signed(ks, second, { url }))).toBe('key_expired');
      fresh = await session(ks, { wallet: owner.account.wallet });
      const late = await ks.app.inject({ method: 'POST', url: `/api/v1/keys/${k.id}/regenerate`, headers: fresh.headers, payload: { gracePeriodSeconds: 3600 } });
      expect(late.statusCode).toBe(200);
      expect(late.json().previousCredentialValidUntil).toBeNull();
      expect(code(await signed(ks, second, { url }))).toBe('invalid_signature');
      expect((await signed(ks, { apiKey: k.apiKey, secret: late.json().apiSecret }, { url })).statusCode).toBe(200);
    } finally {
      clock.set(start);
    }
  });

  it('without a grace period the old secret stops at once', async () => {
    const k = await createKey(ks, owner.headers, { label: 'rotate now', scopes: ['orders:read'] });
    const res = await ks.app.inject({ method: 'POST', url: `/api/v1/keys/${k.id}/regenerate`, headers: owner.headers, payload: {} });
    expect(res.json().previousCredentialValidUntil).toBeNull();
    expect(code(await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe' }))).toBe('invalid_signature');
    expect((await signed(ks, { apiKey: k.apiKey, secret: res.json().apiSecret }, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
  });
});
