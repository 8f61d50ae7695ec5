import { ed25519 } from '@noble/curves/ed25519.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { StateUnavailableError } from '../../src/state/port.js';
import { sessionFor } from '../support/auth.js';
import { dropSchema, emptySharedState, newIsolation } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { code, createKey, credentialOf, session, signed, signedInject, startKeysServer, type KeysTestServer } from './support.js';

const scaleoutUp = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));
const backends = scaleoutUp ? (['embedded', 'scaleout'] as const) : (['embedded'] as const);

describe.each(backends)('replay protection and role capping on %s', (backend) => {
  const clock = new ManualClock(Date.UTC(2026, 4, 1));
  let ks: KeysTestServer;
  beforeAll(async () => {
    ks = await startKeysServer({ backend, clock });
  });
  afterAll(() => ks.close());

  it('accepts exactly one of 50 concurrent copies of one signed request', async () => {
    const owner = await session(ks);
    const key = await createKey(ks, owner.headers, { label: 'race', scopes: ['orders:write'] });
    const opts = signedInject(ks, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"note":"once"}' });
    const results = await Promise.all(Array.from({ length: 50 }, () => ks.app.inject(opts)));
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
    expect(results.filter((r) => code(r) === 'replayed_request')).toHaveLength(49);
  });

  it('a request signed with an ed25519 key is accepted once, whichever key registering that public key it names', async () => {
    // Two keys of one account registered with the same public key (one bot key pair, two scopes):
    // a captured request sent again under the other key's X-API-Key must not execute twice.
    const owner = await session(ks);
    const { secretKey, publicKey } = ed25519.keygen();
    const hex = Buffer.from(publicKey).toString('hex');
    const a = await createKey(ks, owner.headers, { label: 'ed a', type: 'ed25519', publicKey: hex, scopes: ['orders:write'] });
    const b = await createKey(ks, owner.headers, { label: 'ed b', type: 'ed25519', publicKey: hex, scopes: ['orders:write'] });
    const accepted = signedInject(ks, { apiKey: a.apiKey, edSecretKey: secretKey }, { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":41}' });
    const first = await ks.app.inject(accepted);
    expect(first.statusCode, first.body).toBe(200);
    const underB = { ...accepted, headers: { ...(accepted.headers as Record<string, string>), 'x-api-key': b.apiKey } };
    expect(code(await ks.app.inject(underB))).toBe('replayed_request');
    // A request of its own is still accepted under the second key.
    expect((await ks.app.inject(signedInject(ks, { apiKey: b.apiKey, edSecretKey: secretKey }, { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":42}' }))).statusCode).toBe(200);
  });

  it('refuses a copy at the edge of the largest window whose checks took over a second (a stalled server)', async () => {
    const owner = await session(ks);
    const key = await createKey(ks, owner.headers, { label: 'slow copy', scopes: ['orders:write'] });
    const t = clock.now();
    // Signed 1 s ahead (the most allowed) and accepted at once: remembered from now, 62 s.
    const accepted = signedInject(ks, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":9001}', timestamp: t + 1_000, recvWindow: '60000' });
    expect((await ks.app.inject(accepted)).statusCode).toBe(200);
    // The copy arrives as the largest receive window ends; reading its key stalls 1.5 s (a long GC
    // pause, an overloaded event loop, a slow shared-state answer) before the replay memory is asked.
    clock.set(t + 61_000);
    const state = ks.server.services.state;
    const getMany = state.getMany.bind(state);
    let stalled = false;
    state.getMany = async (keys) => {
      if (!stalled) {
        stalled = true;
        clock.advance(1_500);
      }
      return getMany(keys);
    };
    try {
      const copy = await ks.app.inject(accepted);
      expect(stalled).toBe(true);
      // In process the memory runs on the (manual) clock and has forgotten the original by now;
      // Redis keeps its own time, so there only the answer's code tells.
      expect(copy.statusCode).not.toBe(200);
      expect(code(copy)).toBe('timestamp_out_of_window');
    } finally {
      state.getMany = getMany;
    }
  });

  it('still refuses a replay after the key is revoked, and after a suspension is lifted', async () => {
    const owner = await session(ks);
    const admin = await sessionFor(ks.server, { role: 'admin' });
    const key = await createKey(ks, owner.headers, { label: 'replay', scopes: ['orders:write'] });
    const accepted = signedInject(ks, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":7}' });
    expect((await ks.app.inject(accepted)).statusCode).toBe(200);

    await ks.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${key.id}/suspend`, headers: admin.headers, payload: {} });
    expect(code(await ks.app.inject(accepted))).toBe('key_suspended');
    await ks.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${key.id}/unsuspend`, headers: admin.headers, payload: {} });
    expect(code(await ks.app.inject(accepted))).toBe('replayed_request');

    await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${key.id}`, headers: owner.headers });
    expect(code(await ks.app.inject(accepted))).toBe('key_revoked');
  });

  it("a demoted owner's key loses its trading scopes at once", async () => {
    const owner = await session(ks);
    const key = await createKey(ks, owner.headers, { label: 'trader bot', scopes: ['market:read', 'orders:read', 'orders:write'] });
    const cred = credentialOf(key);
    expect((await signed(ks, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{}' })).statusCode).toBe(200);

    await ks.server.services.accounts.setRole(owner.account.wallet, 'developer', 'test');

    expect(code(await signed(ks, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{}' }))).toBe('forbidden_role');
    const market = await signed(ks, cred, { url: '/api/v1/market/probe', unsigned: true });
    expect(market.json()).toMatchObject({ role: 'developer', scopes: ['market:read', 'orders:read'] });
    const later = await session(ks, { wallet: owner.account.wallet });
    const view = await ks.app.inject({ method: 'GET', url: `/api/v1/keys/${key.id}`, headers: later.headers });
    expect(view.json()).toMatchObject({ scopes: ['market:read', 'orders:read', 'orders:write'], effectiveScopes: ['market:read', 'orders:read'] });

    // Promoted back, the key trades again: the cap is the role in force, not a rewrite of the key.
    await ks.server.services.accounts.setRole(owner.account.wallet, 'trader', 'test');
    expect((await signed(ks, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{}' })).statusCode).toBe(200);
  });
});

describe.skipIf(!scaleoutUp)('two scale-out servers sharing one database and one Redis', () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 2));
  const isolation = newIsolation();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-keys-'));
  let a: KeysTestServer;
  let b: KeysTestServer;
  beforeAll(async () => {
    a = await startKeysServer({ backend: 'scaleout', clock, isolation, dataDir });
    b = await startKeysServer({ backend: 'scaleout', clock, isolation, dataDir });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await dropSchema(isolation.pgSchema);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a revocation on one server refuses the key on the other at once, though it cached the key', async () => {
    const owner = await session(a);
    const key = await createKey(a, owner.headers, { label: 'shared', scopes: ['orders:read'] });
    const cred = credentialOf(key);
    expect((await signed(b, cred, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    expect((await signed(b, cred, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    expect((await a.app.inject({ method: 'DELETE', url: `/api/v1/keys/${key.id}`, headers: owner.headers })).statusCode).toBe(200);
    expect(code(await signed(b, cred, { url: '/api/v1/trading/probe' }))).toBe('key_revoked');
  });

  it('a revocation whose announcement never went out reaches the other server by the next security sync pass', async () => {
    const owner = await session(a);
    const key = await createKey(a, owner.headers, { label: 'unannounced', scopes: ['orders:read'] });
    const cred = credentialOf(key);
    expect((await signed(b, cred, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    // Committed, never announced: shared state was away when the owner revoked it (they heard 503
    // and did not retry), or the process stopped between its commit and its announcement.
    const row = await a.server.services.store.db.selectFrom('api_keys').select('version').where('id', '=', key.id).executeTakeFirstOrThrow();
    const now = clock.now();
    await a.server.services.store.db.updateTable('api_keys').set({ revoked_at: now, version: Number(row.version) + 1, updated_at: now }).where('id', '=', key.id).execute();
    // b still serves its cached copy…
    expect((await signed(b, cred, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    // …until any server's next pass announces the version (not when the copy ages out, a minute on).
    await a.server.services.securitySync.runOnce();
    expect(code(await signed(b, cred, { url: '/api/v1/trading/probe' }))).toBe('key_revoked');
  });

  it('suspension, unsuspension and narrowed scopes reach the other server at once', async () => {
    const owner = await session(a);
    const admin = await sessionFor(a.server, { role: 'admin' });
    const key = await createKey(a, owner.headers, { label: 'shared2', scopes: ['orders:read', 'orders:write'] });
    const cred = credentialOf(key);
    expect((await signed(b, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{}' })).statusCode).toBe(200);
    await a.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${key.id}/suspend`, headers: admin.headers, payload: {} });
    expect(code(await signed(b, cred, { url: '/api/v1/trading/probe' }))).toBe('key_suspended');
    await a.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${key.id}/unsuspend`, headers: admin.headers, payload: {} });
    expect((await signed(b, cred, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    await a.app.inject({ method: 'PATCH', url: `/api/v1/keys/${key.id}`, headers: owner.headers, payload: { scopes: ['orders:read'] } });
    expect(code(await signed(b, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{}' }))).toBe('insufficient_scope');
  });

  it('a suspension whose announcement failed reaches the other server when the administrator retries it', async () => {
    const owner = await session(a);
    const admin = await sessionFor(a.server, { role: 'admin' });
    const key = await createKey(a, owner.headers, { label: 'shared4', scopes: ['orders:read'] });
    const cred = credentialOf(key);
    expect((await signed(b, cred, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    // Shared state fails while the suspension is announced: the change commits, the admin hears 503.
    const state = a.server.services.state;
    const setMax = state.setMax.bind(state);
    state.setMax = async () => {
      throw new StateUnavailableError('test: shared state down');
    };
    try {
      expect((await a.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${key.id}/suspend`, headers: admin.headers, payload: {} })).statusCode).toBe(503);
    } finally {
      state.setMax = setMax;
    }
    expect((await signed(b, cred, { url: '/api/v1/trading/probe' })).statusCode).toBe(200); // b still serves its cached copy
    expect((await a.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${key.id}/suspend`, headers: admin.headers, payload: {} })).statusCode).toBe(200);
    expect(code(await signed(b, cred, { url: '/api/v1/trading/probe' }))).toBe('key_suspended');
  });

  it('a request accepted by one server is a replay on the other; 50 copies split across both → one accepted', async () => {
    const owner = await session(a);
    const key = await createKey(a, owner.headers, { label: 'shared3', scopes: ['orders:write'] });
    const once = signedInject(a, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":1}' });
    expect((await a.app.inject(once)).statusCode).toBe(200);
    expect(code(await b.app.inject(once))).toBe('replayed_request');

    const race = signedInject(a, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":2}' });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).app.inject(race)));
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
  });

  it('a request accepted before Redis restarted empty is not accepted again by either server', async () => {
    const owner = await session(a);
    const key = await createKey(a, owner.headers, { label: 'flushed', scopes: ['orders:write'] });
    const once = signedInject(a, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":3}' });
    expect((await a.app.inject(once)).statusCode).toBe(200);
    for (const s of [a, b]) await s.server.services.securitySync.runOnce();

    // What a restart without persistence (or a failover to an empty replica) leaves: nothing.
    await emptySharedState(isolation);
    // Each server's next security sync pass notices (forced here, a moment later).
    clock.advance(1_500);
    for (const s of [a, b]) await s.server.services.securitySync.runOnce();

    for (const s of [b, a]) expect(code(await s.app.inject(once))).toBe('timestamp_out_of_window');
    // A server started now, with no pass behind it, does not vouch for it either.
    const c = await startKeysServer({ backend: 'scaleout', clock, isolation, dataDir });
    try {
      expect(code(await c.app.inject(once))).toBe('timestamp_out_of_window');
    } finally {
      await c.close();
    }
    // Requests signed from then on are accepted, once.
    clock.advance(1_500);
    const fresh = signedInject(a, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":4}' });
    expect((await b.app.inject(fresh)).statusCode).toBe(200);
    expect(code(await a.app.inject(fresh))).toBe('replayed_request');
  });

  it('a request accepted just before Redis restarted empty is refused by both servers at once, before any sync pass notices', async () => {
    const owner = await session(a);
    const key = await createKey(a, owner.headers, { label: 'flushed early', scopes: ['orders:write'] });
    clock.advance(1_500);
    const once = signedInject(a, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":5}' });
    expect((await a.app.inject(once)).statusCode).toBe(200);
    await emptySharedState(isolation);
    // No security sync pass runs: the replay memory's marker, read with every record, tells.
    for (const s of [b, a]) expect(code(await s.app.inject(once))).toBe('timestamp_out_of_window');
    clock.advance(1_500);
    const fresh = signedInject(a, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":6}' });
    expect((await a.app.inject(fresh)).statusCode).toBe(200);
    expect(code(await b.app.inject(fresh))).toBe('replayed_request');
  });

  it('a request whose checks were under way when Redis restarted empty dates the new memory from when it asked, not from when it arrived', async () => {
    const owner = await session(a);
    const key = await createKey(a, owner.headers, { label: 'stalled at the loss', scopes: ['orders:write'] });
    clock.advance(1_500);
    const t = clock.now();
    // X arrives at t on b; reading its key stalls (a GC pause, a slow shared-state answer).
    const x = signedInject(b, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":7}' });
    // Meanwhile a on its own accepts R, signed 1 s ahead (allowed), then Redis restarts empty.
    let r: ReturnType<typeof signedInject> | undefined;
    const state = b.server.services.state;
    const getMany = state.getMany.bind(state);
    let stalled = false;
    state.getMany = async (keys) => {
      if (!stalled) {
        stalled = true;
        clock.advance(100);
        r = signedInject(a, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"n":8}', timestamp: clock.now() + 1_000 });
        expect((await a.app.inject(r)).statusCode).toBe(200);
        clock.advance(100);
        await emptySharedState(isolation);
      }
      return getMany(keys);
    };
    try {
      expect(code(await b.app.inject(x))).toBe('timestamp_out_of_window');
    } finally {
      state.getMany = getMany;
    }
    expect(stalled).toBe(true);
    expect(t).toBeLessThan(clock.now());
    // R was accepted before the loss, which took its record: neither server may take it again.
    for (const s of [a, b]) expect(code(await s.app.inject(r!))).toBe('timestamp_out_of_window');
    clock.advance(2_500); // past the new memory's start for the requests of the tests after this one
  });

  it('a rotation reminder is emitted by exactly one of two servers sweeping at once', async () => {
    const owner = await session(a);
    const key = await createKey(a, owner.headers, { label: 'expiring', scopes: ['market:read'], expiresInDays: 10 });
    const seen: string[] = [];
    for (const s of [a, b]) s.server.services.events.subscribe((e) => void (e.type === 'key.rotation_due' && 'keyId' in e && e.keyId === key.id && seen.push(e.keyId)));
    await Promise.all([a.server.services.apiKeys.sweepRotationReminders(), b.server.services.apiKeys.sweepRotationReminders()]);
    expect(seen).toEqual([key.id]);
  });

  it('a demotion on one server caps the key on the other', async () => {
    const owner = await session(a);
    const key = await createKey(a, owner.headers, { label: 'shared4', scopes: ['market:read', 'orders:write'] });
    const cred = credentialOf(key);
    expect((await signed(b, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{}' })).statusCode).toBe(200);
    await a.server.services.accounts.setRole(owner.account.wallet, 'developer', 'test');
    expect(code(await signed(b, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{}' }))).toBe('forbidden_role');
    expect((await signed(b, cred, { url: '/api/v1/market/probe', unsigned: true })).json().scopes).toEqual(['market:read']);
  });
});

describe('a restart of the embedded server (in-process replay memory, SQLite file)', () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 3));
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-keys-restart-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('does not accept again a request the previous process accepted', async () => {
    const first = await startKeysServer({ clock, dataDir, sqliteFile: true });
    let accepted: ReturnType<typeof signedInject>;
    let key: Awaited<ReturnType<typeof createKey>>;
    try {
      const owner = await session(first);
      key = await createKey(first, owner.headers, { label: 'restart', scopes: ['orders:write'] });
      accepted = signedInject(first, credentialOf(key), { method: 'POST', url: '/api/v1/trading/probe', body: '{"note":"buy once"}' });
      expect((await first.app.inject(accepted)).statusCode).toBe(200);
      expect(code(await first.app.inject(accepted))).toBe('replayed_request');
    } finally {
      await first.close();
    }

    clock.advance(2_000); // the process restarts; the copy is still inside a 60 s receive window
    const second = await startKeysServer({ clock, dataDir, sqliteFile: true });
    try {
      const copy = { ...accepted, headers: { ...(accepted.headers as Record<string, string>), 'x-api-recv-window': '60000' } };
      const res = await second.app.inject(copy);
      expect(res.statusCode).toBe(401);
      expect(code(res)).toBe('timestamp_out_of_window');
      expect(res.json().serverTime).toBe(clock.now());
      // A request signed now (once the server's first second has passed) goes through.
      clock.advance(1_000);
      expect((await signed(second, credentialOf(key!), { method: 'POST', url: '/api/v1/trading/probe', body: '{"note":"fresh"}', timestamp: clock.now() })).statusCode).toBe(200);
    } finally {
      await second.close();
    }
  });
});
