import { ed25519 } from '@noble/curves/ed25519.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { StateUnavailableError } from '../../src/state/port.js';
import type { SecurityEvent } from '../../src/security/events/index.js';
import { sessionFor } from '../support/auth.js';
import { code, createKey, credentialOf, session, signed, startKeysServer, type KeysTestServer } from './support.js';

const DAY = 86_400_000;
const clock = new ManualClock(Date.UTC(2026, 3, 1));
let ks: KeysTestServer;
let owner: Awaited<ReturnType<typeof session>>;
const events: SecurityEvent[] = [];

beforeAll(async () => {
  ks = await startKeysServer({ clock });
  ks.server.services.events.subscribe((e) => {
    events.push(e);
  });
  owner = await session(ks);
});
afterAll(() => ks.close());

const post = (url: string, headers: Record<string, string>, payload: unknown) => ks.app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> });

describe('POST /api/v1/keys', () => {
  it('creates an hmac key: md_test_ key, mds_ secret shown once, 90-day expiry by default', async () => {
    const res = await post('/api/v1/keys', owner.headers, { label: 'reader', scopes: ['market:read', 'account:read'] });
    expect(res.statusCode).toBe(201);
    const k = res.json();
    expect(k.apiKey).toMatch(/^md_test_[1-9A-HJ-NP-Za-km-z]{30,}$/);
    expect(k.apiSecret).toMatch(/^mds_[1-9A-HJ-NP-Za-km-z]{40,}$/);
    expect(k).toMatchObject({ label: 'reader', type: 'hmac', environment: 'sandbox', status: 'active', scopes: ['market:read', 'account:read'], ipWhitelist: [], allowedCountries: [], publicKey: null });
    expect(k.prefix).toBe(k.apiKey.slice(0, 12));
    expect(k.expiresAt).toBe(clock.now() + 90 * DAY);
    expect(events.some((e) => e.type === 'key.created' && 'keyId' in e && e.keyId === k.id)).toBe(true);

    const got = await ks.app.inject({ method: 'GET', url: `/api/v1/keys/${k.id}`, headers: owner.headers });
    expect(got.statusCode).toBe(200);
    expect(got.body).not.toContain(k.apiSecret);
    expect(got.body).not.toContain(k.apiKey);
    expect(got.json()).not.toHaveProperty('apiSecret');
    const list = await ks.app.inject({ method: 'GET', url: '/api/v1/keys', headers: owner.headers });
    expect(list.json().keys.map((x: { id: string }) => x.id)).toContain(k.id);
    expect(list.body).not.toContain(k.apiSecret);
  });

  it('stores the key as a hash and the secret encrypted with the key id as AAD', async () => {
    const k = (await post('/api/v1/keys', owner.headers, { label: 'stored', scopes: ['market:read'] })).json();
    const row = await ks.server.services.store.db.selectFrom('api_keys').selectAll().where('id', '=', k.id).executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(k.apiKey);
    expect(JSON.stringify(row)).not.toContain(k.apiSecret);
    expect(row.secret_enc).toMatch(/^v1\./);
    expect(ks.server.services.keyring.decrypt(row.secret_enc!, k.id)).toBe(k.apiSecret);
    // A ciphertext copied to another row does not decrypt there.
    expect(() => ks.server.services.keyring.decrypt(row.secret_enc!, 'key_OTHER')).toThrow();
  });

  it('refuses scopes beyond the role (forbidden_role) and unknown scopes (validation_failed)', async () => {
    const dev = await session(ks, { role: 'developer' });
    const res = await post('/api/v1/keys', dev.headers, { label: 'dev', scopes: ['market:read', 'orders:write'] });
    expect(code(res)).toBe('forbidden_role');
    expect(res.json().detail).toContain('orders:write');
    expect(code(await post('/api/v1/keys', dev.headers, { label: 'dev', scopes: ['market:read', 'god:mode'] }))).toBe('validation_failed');
    const auditor = await session(ks, { role: 'auditor' });
    // An auditor changes nothing but its own sign-in state: it may not create keys at all.
    expect(code(await post('/api/v1/keys', auditor.headers, { label: 'aud', scopes: ['webhooks:write'] }))).toBe('forbidden_role');
    expect(code(await post('/api/v1/keys', auditor.headers, { label: 'aud', scopes: ['account:read'] }))).toBe('forbidden_role');
  });

  it('refuses labels with control, bidi or invisible characters, on create and on update', async () => {
    const owner = await session(ks);
    for (const label of ['bot\u0000', 'gnp.\u202eexe', '\u200f', 'a\nb', 'x'.repeat(65), 'prod\ufe0f', 'pr\u034fod', 'prod\u3164']) {
      expect(code(await post('/api/v1/keys', owner.headers, { label, scopes: ['market:read'] })), JSON.stringify(label)).toBe('validation_failed');
    }
    const k = (await post('/api/v1/keys', owner.headers, { label: ' reader 🚀 ', scopes: ['market:read'] })).json();
    expect(k.label).toBe('reader 🚀');
    // 64 characters after trimming, as API.md counts them: the surrounding blanks do not count.
    const padded = await post('/api/v1/keys', owner.headers, { label: ` ${'x'.repeat(64)} `, scopes: ['market:read'] });
    expect(padded.statusCode, padded.body).toBe(201);
    expect(padded.json().label).toBe('x'.repeat(64));
    const repadded = await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${padded.json().id}`, headers: owner.headers, payload: { label: `${'y'.repeat(64)}\n` } });
    expect(repadded.statusCode, repadded.body).toBe(200);
    expect(repadded.json().label).toBe('y'.repeat(64));
    for (const label of ['admin\u202e', 'admin\u{e0100}', 'ad\u115fmin']) {
      const patched = await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${k.id}`, headers: owner.headers, payload: { label } });
      expect(code(patched), JSON.stringify(label)).toBe('validation_failed');
    }
    const view = await ks.app.inject({ method: 'GET', url: `/api/v1/keys/${k.id}`, headers: owner.headers });
    expect(view.json().label).toBe('reader 🚀');
  });

  it('accepts 10 whitelist entries and refuses an 11th (validation_failed)', async () => {
    const ten = Array.from({ length: 10 }, (_, i) => `198.51.100.${i + 1}`);
    expect((await post('/api/v1/keys', owner.headers, { label: 'ten', scopes: ['market:read'], ipWhitelist: ten })).statusCode).toBe(201);
    const res = await post('/api/v1/keys', owner.headers, { label: 'eleven', scopes: ['market:read'], ipWhitelist: [...ten, '198.51.100.11'] });
    expect(code(res)).toBe('validation_failed');
    expect(res.json().detail).toContain('at most 10');
  });

  it('refuses malformed whitelist entries and country codes', async () => {
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'x', scopes: ['market:read'], ipWhitelist: ['10.0.0.0/33'] }))).toBe('validation_failed');
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'x', scopes: ['market:read'], ipWhitelist: ['example.com'] }))).toBe('validation_failed');
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'x', scopes: ['market:read'], allowedCountries: ['GBR'] }))).toBe('validation_failed');
    // Two letters, yet no country: UK is not the United Kingdom's code (GB is), so a key bound to
    // it would refuse every request. Refused when set, and nothing is created.
    const before = (await ks.app.inject({ method: 'GET', url: '/api/v1/keys', headers: owner.headers })).json().keys.length;
    for (const c of ['UK', 'XX']) expect(code(await post('/api/v1/keys', owner.headers, { label: 'x', scopes: ['market:read'], allowedCountries: ['GB', c] })), c).toBe('validation_failed');
    expect((await ks.app.inject({ method: 'GET', url: '/api/v1/keys', headers: owner.headers })).json().keys).toHaveLength(before);
  });

  it('normalises whitelist entries (IPv4-mapped, IPv6 case)', async () => {
    const k = (await post('/api/v1/keys', owner.headers, { label: 'norm', scopes: ['market:read'], ipWhitelist: ['::ffff:192.0.2.1', '2001:DB8::/32'] })).json();
    expect(k.ipWhitelist).toEqual(['192.0.2.1', '2001:db8::/32']);
  });

  it('requires an IP whitelist for withdrawals:write', async () => {
    const res = await post('/api/v1/keys', owner.headers, { label: 'w', scopes: ['withdrawals:write'] });
    expect(code(res)).toBe('validation_failed');
    expect(res.json().detail).toContain('ipWhitelist');
    expect((await post('/api/v1/keys', owner.headers, { label: 'w', scopes: ['withdrawals:write'], ipWhitelist: ['198.51.100.1'] })).statusCode).toBe(201);
  });

  it('a withdrawals:write whitelist must bind addresses: no range wider than /8 (IPv4) or /16 (IPv6)', async () => {
    for (const ipWhitelist of [['0.0.0.0/0', '::/0'], ['0.0.0.0/1', '128.0.0.0/1'], ['198.51.100.1', '::/0'], ['10.0.0.0/7'], ['2001::/15']]) {
      const res = await post('/api/v1/keys', owner.headers, { label: 'w', scopes: ['withdrawals:write'], ipWhitelist });
      expect(code(res), JSON.stringify(ipWhitelist)).toBe('validation_failed');
    }
    const k = await createKey(ks, owner.headers, { label: 'w', scopes: ['withdrawals:write'], ipWhitelist: ['10.0.0.0/8', '2001:db8::/16'] });
    const widened = await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${k.id}`, headers: owner.headers, payload: { ipWhitelist: ['0.0.0.0/0', '::/0'] } });
    expect(code(widened)).toBe('validation_failed');
    // A key that cannot withdraw may still say "any address" in CIDR; the checklist says what it is.
    const me = await session(ks);
    const any = await createKey(ks, me.headers, { label: 'any', scopes: ['orders:read'], ipWhitelist: ['0.0.0.0/0', '::/0'] });
    const checklist = (await ks.app.inject({ method: 'GET', url: '/api/v1/security/checklist', headers: me.headers })).json();
    expect(checklist.items.find((i: { id: string }) => i.id === 'ip_whitelisting')).toMatchObject({ result: 'fail', keyIds: [any.id] });
  });

  it('bounds expiresInDays and refuses unknown fields and number-typed strings', async () => {
    expect((await post('/api/v1/keys', owner.headers, { label: 'long', scopes: ['market:read'], expiresInDays: 3650 })).statusCode).toBe(201);
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'x', scopes: ['market:read'], expiresInDays: 0 }))).toBe('validation_failed');
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'x', scopes: ['market:read'], expiresInDays: 3651 }))).toBe('validation_failed');
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'x', scopes: ['market:read'], admin: true }))).toBe('validation_failed');
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'x', scopes: [] }))).toBe('validation_failed');
  });

  it('ed25519: needs a valid public key, refuses small-order points and secrets', async () => {
    const { publicKey } = ed25519.keygen();
    const hex = Buffer.from(publicKey).toString('hex');
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'ed', type: 'ed25519', scopes: ['market:read'] }))).toBe('validation_failed');
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'ed', type: 'ed25519', scopes: ['market:read'], publicKey: `01${'0'.repeat(62)}` }))).toBe('validation_failed');
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'ed', type: 'ed25519', scopes: ['market:read'], publicKey: 'zz' }))).toBe('validation_failed');
    expect(code(await post('/api/v1/keys', owner.headers, { label: 'hm', scopes: ['market:read'], publicKey: hex }))).toBe('validation_failed');
    const pem = `-----BEGIN PUBLIC KEY-----\n${Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(publicKey)]).toString('base64')}\n-----END PUBLIC KEY-----\n`;
    const k = (await post('/api/v1/keys', owner.headers, { label: 'ed pem', type: 'ed25519', scopes: ['market:read'], publicKey: pem })).json();
    expect(k.publicKey).toBe(hex);
  });
});

describe('GET, PATCH, DELETE /api/v1/keys/:id', () => {
  it("another account's key is not found, for every operation", async () => {
    const k = await createKey(ks, owner.headers, { label: 'mine', scopes: ['market:read'] });
    const other = await session(ks);
    const id = k.id;
    const tries = [
      ks.app.inject({ method: 'GET', url: `/api/v1/keys/${id}`, headers: other.headers }),
      ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${id}`, headers: other.headers, payload: { label: 'stolen' } }),
      post(`/api/v1/keys/${id}/regenerate`, other.headers, {}),
      ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${id}`, headers: other.headers }),
    ];
    for (const res of await Promise.all(tries)) expect(code(res)).toBe('not_found');
    const still = await ks.app.inject({ method: 'GET', url: `/api/v1/keys/${id}`, headers: owner.headers });
    expect(still.json()).toMatchObject({ label: 'mine', status: 'active' });
  });

  it('PATCH narrows scopes and never widens them', async () => {
    const k = await createKey(ks, owner.headers, { label: 'narrow', scopes: ['market:read', 'orders:read', 'orders:write'] });
    const narrowed = await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${k.id}`, headers: owner.headers, payload: { scopes: ['market:read', 'orders:read'] } });
    expect(narrowed.statusCode).toBe(200);
    expect(narrowed.json().scopes).toEqual(['market:read', 'orders:read']);
    expect(code(await signed(ks, credentialOf(k), { method: 'POST', url: '/api/v1/trading/probe', body: '{}' }))).toBe('insufficient_scope');
    const widen = await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${k.id}`, headers: owner.headers, payload: { scopes: ['market:read', 'orders:read', 'orders:write'] } });
    expect(code(widen)).toBe('validation_failed');
    expect(widen.json().detail).toContain('orders:write');
    const after = await ks.app.inject({ method: 'GET', url: `/api/v1/keys/${k.id}`, headers: owner.headers });
    expect(after.json().scopes).toEqual(['market:read', 'orders:read']);
  });

  it('PATCH changes label, whitelist and countries, keeping the withdrawal rule', async () => {
    const k = await createKey(ks, owner.headers, { label: 'w', scopes: ['withdrawals:write'], ipWhitelist: ['198.51.100.1'] });
    expect(code(await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${k.id}`, headers: owner.headers, payload: { ipWhitelist: [] } }))).toBe('validation_failed');
    const eleven = Array.from({ length: 11 }, (_, i) => `198.51.100.${i + 1}`);
    expect(code(await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${k.id}`, headers: owner.headers, payload: { ipWhitelist: eleven } }))).toBe('validation_failed');
    const res = await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${k.id}`, headers: owner.headers, payload: { label: 'payouts', ipWhitelist: ['198.51.100.0/24'], allowedCountries: ['NL'] } });
    expect(res.json()).toMatchObject({ label: 'payouts', ipWhitelist: ['198.51.100.0/24'], allowedCountries: ['NL'] });
    expect(events.some((e) => e.type === 'key.updated' && 'keyId' in e && e.keyId === k.id)).toBe(true);
  });

  it('DELETE revokes: status revoked, secret erased, further changes refused, idempotent', async () => {
    const k = await createKey(ks, owner.headers, { label: 'gone', scopes: ['orders:read'] });
    const res = await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${k.id}`, headers: owner.headers });
    expect(res.json()).toMatchObject({ status: 'revoked', revokedAt: clock.now(), effectiveScopes: [] });
    const row = await ks.server.services.store.db.selectFrom('api_keys').selectAll().where('id', '=', k.id).executeTakeFirstOrThrow();
    expect(row.secret_enc).toBeNull();
    expect(code(await post(`/api/v1/keys/${k.id}/regenerate`, owner.headers, {}))).toBe('conflict');
    expect(code(await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${k.id}`, headers: owner.headers, payload: { label: 'back' } }))).toBe('conflict');
    expect((await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${k.id}`, headers: owner.headers })).statusCode).toBe(200);
    expect(events.filter((e) => e.type === 'key.revoked' && 'keyId' in e && e.keyId === k.id)).toHaveLength(1);
  });

  it('regenerate: refuses a grace period over 24 h, renews the expiry', async () => {
    const k = await createKey(ks, owner.headers, { label: 'regen', scopes: ['orders:read'], expiresInDays: 30 });
    expect(code(await post(`/api/v1/keys/${k.id}/regenerate`, owner.headers, { gracePeriodSeconds: 86_401 }))).toBe('validation_failed');
    const start = clock.now();
    clock.advance(20 * DAY);
    try {
      const later = await session(ks, { wallet: owner.account.wallet }); // the first access token has expired
      const res = await post(`/api/v1/keys/${k.id}/regenerate`, later.headers, { gracePeriodSeconds: 86_400 });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ expiresAt: clock.now() + 30 * DAY, regeneratedAt: clock.now(), previousCredentialValidUntil: clock.now() + DAY });
    } finally {
      clock.set(start);
    }
  });

  it('regenerate without a body (the shared contract names none) takes every default: a new secret, no grace period', async () => {
    const k = await createKey(ks, owner.headers, { label: 'bare regen', scopes: ['orders:read'] });
    const res = await ks.app.inject({ method: 'POST', url: `/api/v1/keys/${k.id}/regenerate`, headers: owner.headers });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id: k.id, regeneratedAt: clock.now(), previousCredentialValidUntil: null });
    expect(res.json().apiSecret).toMatch(/./);
    expect(res.json().apiSecret).not.toBe(k.apiSecret);
  });

  it('regenerate whose announcement fails still hands over the secret it committed: the old one keeps its grace period', async () => {
    const k = await createKey(ks, owner.headers, { label: 'regen outage', scopes: ['orders:read'] });
    // Shared state fails after the new secret committed: before, the owner heard 503 without the
    // secret, and the retry it invites replaced the secret still in use (the grace period then
    // kept only the lost one valid).
    const state = ks.server.services.state;
    const setMax = vi.spyOn(state, 'setMax').mockRejectedValueOnce(new StateUnavailableError('test: shared state down'));
    let res;
    try {
      res = await post(`/api/v1/keys/${k.id}/regenerate`, owner.headers, { gracePeriodSeconds: 3600 });
    } finally {
      setMax.mockRestore();
    }
    expect(res.statusCode, res.body).toBe(200);
    const secret = res.json().apiSecret as string;
    expect(secret).toMatch(/^mds_/);
    expect(secret).not.toBe(k.apiSecret);
    expect(res.json().previousCredentialValidUntil).toBe(clock.now() + 3_600_000);
    // Both the new secret and the old one (its grace period) sign.
    expect((await signed(ks, { apiKey: k.apiKey, secret }, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    expect((await signed(ks, credentialOf(k), { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
  });

  it('regenerate of an ed25519 key takes the new public key', async () => {
    const first = ed25519.keygen();
    const second = ed25519.keygen();
    const k = await createKey(ks, owner.headers, { label: 'ed', type: 'ed25519', scopes: ['orders:read'], publicKey: Buffer.from(first.publicKey).toString('hex') });
    expect(code(await post(`/api/v1/keys/${k.id}/regenerate`, owner.headers, {}))).toBe('validation_failed');
    const res = await post(`/api/v1/keys/${k.id}/regenerate`, owner.headers, { publicKey: Buffer.from(second.publicKey).toString('hex') });
    expect(res.json()).not.toHaveProperty('apiSecret');
    expect(code(await signed(ks, { apiKey: k.apiKey, edSecretKey: first.secretKey }, { url: '/api/v1/trading/probe' }))).toBe('invalid_signature');
    expect((await signed(ks, { apiKey: k.apiKey, edSecretKey: second.secretKey }, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
  });
});

describe('admin suspend and unsuspend', () => {
  it('are admin-only (forbidden_role for others) and refuse unknown keys', async () => {
    const k = await createKey(ks, owner.headers, { label: 'susp', scopes: ['orders:read'] });
    expect(code(await post(`/api/v1/admin/keys/${k.id}/suspend`, owner.headers, {}))).toBe('forbidden_role');
    const admin = await sessionFor(ks.server, { role: 'admin' });
    expect(code(await post(`/api/v1/admin/keys/key_00000000000000000000000000/suspend`, admin.headers, {}))).toBe('not_found');
    expect((await post(`/api/v1/admin/keys/${k.id}/suspend`, admin.headers, {})).json().status).toBe('suspended');
    expect(events.some((e) => e.type === 'key.suspended' && 'keyId' in e && e.keyId === k.id && e.by === admin.account.id)).toBe(true);
    // The owner sees the suspension and cannot lift it by regenerating.
    const regen = await post(`/api/v1/keys/${k.id}/regenerate`, owner.headers, {});
    expect(regen.json().status).toBe('suspended');
    expect(code(await signed(ks, { apiKey: k.apiKey, secret: regen.json().apiSecret }, { url: '/api/v1/trading/probe' }))).toBe('key_suspended');
  });

  it('take no body at all, as {} (every field of their bodies is optional)', async () => {
    const k = await createKey(ks, owner.headers, { label: 'susp-nobody', scopes: ['orders:read'] });
    const admin = await sessionFor(ks.server, { role: 'admin' });
    const bare = (url: string) => ks.app.inject({ method: 'POST', url, headers: admin.headers });
    const suspended = await bare(`/api/v1/admin/keys/${k.id}/suspend`);
    expect(suspended.statusCode, suspended.body).toBe(200);
    expect(suspended.json()).toMatchObject({ status: 'suspended', suspendedReason: null });
    const lifted = await bare(`/api/v1/admin/keys/${k.id}/unsuspend`);
    expect(lifted.statusCode, lifted.body).toBe(200);
    expect(lifted.json().status).toBe('active');
    // A body that is there is still checked.
    expect(code(await post(`/api/v1/admin/keys/${k.id}/suspend`, admin.headers, { reason: '' }))).toBe('validation_failed');
  });

  it('refuse a reason with control, bidirectional or invisible formatting characters, and leave the key as it was', async () => {
    // The key's owner reads the reason (suspendedReason): the rule of every text people read. A
    // NUL byte also failed the update on PostgreSQL (a 500, where SQLite stored it).
    const k = await createKey(ks, owner.headers, { label: 'susp-reason', scopes: ['orders:read'] });
    const admin = await sessionFor(ks.server, { role: 'admin' });
    for (const reason of ['x\u0000y', 'call \u202e0091 tsuj', 'bell\u0007']) {
      const res = await post(`/api/v1/admin/keys/${k.id}/suspend`, admin.headers, { reason });
      expect({ reason, status: res.statusCode, code: code(res) }).toEqual({ reason, status: 400, code: 'validation_failed' });
    }
    expect((await ks.app.inject({ method: 'GET', url: `/api/v1/keys/${k.id}`, headers: owner.headers })).json()).toMatchObject({ status: 'active', suspendedReason: null });
    const suspended = await post(`/api/v1/admin/keys/${k.id}/suspend`, admin.headers, { reason: '  leaked in a\npublic repo ' });
    expect(suspended.json()).toMatchObject({ status: 'suspended', suspendedReason: 'leaked in a\npublic repo' });
  });
});

describe('rotation reminders', () => {
  it('emits key.rotation_due once, 14 days before expiry', async () => {
    const start = clock.now();
    const k = await createKey(ks, owner.headers, { label: 'remind', scopes: ['market:read'], expiresInDays: 30 });
    const due = () => events.filter((e) => e.type === 'key.rotation_due' && 'keyId' in e && e.keyId === k.id);
    try {
      clock.advance(16 * DAY - 1);
      await ks.server.services.apiKeys.sweepRotationReminders();
      expect(due()).toHaveLength(0);
      clock.advance(1);
      await ks.server.services.apiKeys.sweepRotationReminders();
      expect(due()).toHaveLength(1);
      expect(due()[0]).toMatchObject({ accountId: owner.account.id, at: clock.now() });
      await ks.server.services.apiKeys.sweepRotationReminders();
      expect(due()).toHaveLength(1);
      // Regenerating starts a new period: a new reminder 14 days before the new expiry.
      const later = await session(ks, { wallet: owner.account.wallet });
      expect((await post(`/api/v1/keys/${k.id}/regenerate`, later.headers, {})).statusCode).toBe(200);
      clock.advance(16 * DAY);
      await ks.server.services.apiKeys.sweepRotationReminders();
      expect(due()).toHaveLength(2);
    } finally {
      clock.set(start);
    }
  });

  it('a key regenerated while a sweep is under way is not claimed for its old expiry, so its new period still gets its reminder', async () => {
    const start = clock.now();
    const svc = ks.server.services.apiKeys;
    const k = await createKey(ks, owner.headers, { label: 'remind race', scopes: ['market:read'], expiresInDays: 30 });
    const due = () => events.filter((e) => e.type === 'key.rotation_due' && 'keyId' in e && e.keyId === k.id);
    const db = ks.server.services.store.db;
    // The sweep's query finds the key due; before the sweep claims it, its owner regenerates it.
    const afterExecute = (qb: object, hook: () => Promise<void>): object =>
      new Proxy(qb, {
        get(target, prop) {
          const value = Reflect.get(target, prop) as unknown;
          if (typeof value !== 'function') return value;
          if (prop === 'execute') {
            return async (...args: unknown[]) => {
              const rows = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
              await hook();
              return rows;
            };
          }
          return (...args: unknown[]) => {
            const next = (value as (...a: unknown[]) => unknown).apply(target, args);
            return next !== null && typeof next === 'object' && 'execute' in next ? afterExecute(next, hook) : next;
          };
        },
      });
    const realSelectFrom = db.selectFrom.bind(db);
    try {
      clock.advance(16 * DAY);
      const spy = vi.spyOn(db, 'selectFrom').mockImplementationOnce(((...args: Parameters<typeof db.selectFrom>) =>
        afterExecute(realSelectFrom(...args), async () => {
          expect((await svc.regenerate({ accountId: owner.account.id, role: 'trader' }, k.id, {})).ok).toBe(true);
        })) as unknown as typeof db.selectFrom);
      try {
        await svc.sweepRotationReminders();
      } finally {
        spy.mockRestore();
      }
      // The key now expires in 30 days: nothing is due yet, and nothing was claimed.
      expect(due()).toHaveLength(0);
      clock.advance(16 * DAY);
      await svc.sweepRotationReminders();
      expect(due()).toHaveLength(1);
    } finally {
      clock.set(start);
    }
  });
});

describe('GET /api/v1/security/checklist', () => {
  it('evaluates the Before Going Live list on the caller\'s keys, with advice', async () => {
    const me = await session(ks);
    const get = async () => (await ks.app.inject({ method: 'GET', url: '/api/v1/security/checklist', headers: me.headers })).json();
    const broad = await createKey(ks, me.headers, { label: 'everything', scopes: ['market:read', 'account:read', 'orders:read', 'portfolio:read', 'orders:write', 'positions:write', 'tokens:write', 'webhooks:write', 'withdrawals:write'], ipWhitelist: ['127.0.0.1'] });
    const open = await createKey(ks, me.headers, { label: 'everything', scopes: ['orders:read'] });
    let list = await get();
    expect(list).toMatchObject({ environment: 'sandbox', total: 5 });
    type Item = { id: string; result: string; keyIds: string[]; advice: string };
    const byId = (l: { items: Item[] }) => Object.fromEntries(l.items.map((i) => [i.id, i])) as Record<string, Item>;
    let items = byId(list);
    expect(Object.keys(items)).toEqual(['ip_whitelisting', 'separate_keys', 'least_scopes', 'revocation_tested', 'request_signing']);
    expect(items.ip_whitelisting).toMatchObject({ result: 'fail', keyIds: [open.id] });
    expect(items.separate_keys).toMatchObject({ result: 'fail' });
    expect(items.least_scopes).toMatchObject({ result: 'fail', keyIds: [broad.id] });
    expect(items.revocation_tested!.result).toBe('fail');
    expect(items.request_signing).toMatchObject({ result: 'fail' });
    for (const i of list.items) expect(i.advice.length).toBeGreaterThan(20);

    // Fix everything.
    await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${broad.id}`, headers: me.headers });
    await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${open.id}`, headers: me.headers, payload: { label: 'order reader', ipWhitelist: ['127.0.0.1'] } });
    expect((await signed(ks, credentialOf(open), { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    list = await get();
    items = byId(list);
    expect(list.passed).toBe(5);
    for (const i of Object.values(items)) expect(i.result).toBe('pass');
  });
});

describe('OpenAPI', () => {
  it('documents the key routes, the admin routes and the checklist', async () => {
    const doc = (await ks.server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const p of ['/api/v1/keys', '/api/v1/keys/{id}', '/api/v1/keys/{id}/regenerate', '/api/v1/admin/keys/{id}/suspend', '/api/v1/admin/keys/{id}/unsuspend', '/api/v1/security/checklist']) {
      expect(doc.paths, p).toHaveProperty([p]);
    }
    expect(doc.paths['/api/v1/keys'].post.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
  });
});

describe('the key cache under a change', () => {
  it('a key revoked while a reload of it is under way is read again, not served from that older load', async () => {
    const svc = ks.server.services.apiKeys;
    const created = (await post('/api/v1/keys', owner.headers, { label: 'racing', scopes: ['market:read'] })).json();
    expect((await svc.resolve(created.apiKey))?.record.version).toBe(1);
    // Another process changes the key (its label): this one learns of it from the version flag,
    // and its next request reloads the key.
    const other = async (set: { label?: string; revoked_at?: number }, version: number) => {
      await ks.server.services.store.db.updateTable('api_keys').set({ ...set, version }).where('id', '=', created.id).execute();
      await ks.server.services.state.setMax(`apikey:v:${created.id}`, version, 60_000);
    };
    await other({ label: 'racing 2' }, 2);
    // That reload reads the key, then is slow to come back (a busy database connection)…
    const internals = svc as unknown as { fetch(by: string, value: string): Promise<unknown> };
    const realFetch = internals.fetch.bind(svc);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let first = true;
    const spy = vi.spyOn(internals, 'fetch').mockImplementation(async (by: string, value: string) => {
      if (!first) return realFetch(by, value);
      first = false;
      const read = await realFetch(by, value);
      await held;
      return read;
    });
    try {
      const slow = svc.resolve(created.apiKey);
      await vi.waitFor(() => expect(first).toBe(false));
      // …and meanwhile another process revokes the key: it commits, then raises the version flag
      // (its change message has not arrived here yet).
      await other({ revoked_at: clock.now() }, 3);
      const after = svc.resolve(created.apiKey);
      release();
      const seen = await after;
      expect(seen?.record.revokedAt).not.toBeNull();
      await slow;
    } finally {
      spy.mockRestore();
    }
  });

  it('a role in shared state that this server cannot read refuses the key instead of using the stored role', async () => {
    const svc = ks.server.services.apiKeys;
    const created = (await post('/api/v1/keys', owner.headers, { label: 'role', scopes: ['market:read'] })).json();
    expect((await svc.resolve(created.apiKey))?.role).toBe('trader');
    await ks.server.services.state.set(`acct:role:${owner.account.id}`, 'superuser');
    try {
      expect(await svc.resolve(created.apiKey)).toBeUndefined();
    } finally {
      await ks.server.services.state.del(`acct:role:${owner.account.id}`);
    }
    expect((await svc.resolve(created.apiKey))?.role).toBe('trader');
  });
});
