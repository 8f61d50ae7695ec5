import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import { serviceAvailable } from '../support/services.js';
import { dropSchema, emptySharedState, newIsolation } from '../support/server.js';
import { signInEthereum } from '../support/wallet.js';
import { code, createKey, credentialOf, session, signed, startKeysServer, type KeysTestServer } from '../keys/support.js';

const scaleout = (await serviceAvailable('redis')) && (await serviceAvailable('postgres'));

/**
 * Redis here keeps nothing on disk: a restart (or a failover to an empty replica) is a FLUSHALL.
 * Two scale-out servers on one schema and key prefix; the security sync's timer is slow (a minute),
 * so what a test sees right after the loss is what the request path itself does, before any pass.
 */
describe.runIf(scaleout)('Redis restarts empty under two scale-out servers: nothing fails open', () => {
  const clock = new ManualClock(Date.now());
  const isolation = newIsolation();
  const env = { MOONDRAFT_SECURITY_SYNC_MS: '60000' };
  let a: KeysTestServer;
  let b: KeysTestServer;
  beforeAll(async () => {
    a = await startKeysServer({ backend: 'scaleout', clock, isolation, env });
    b = await startKeysServer({ backend: 'scaleout', clock, isolation, env, dataDir: a.server.dataDir });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await dropSchema(isolation.pgSchema);
  });

  const account = (ks: KeysTestServer, headers: Record<string, string>) => ks.app.inject({ method: 'GET', url: '/api/v1/account', headers });

  it('a revoked session and a demoted role stay so on both servers at once, before any sync pass', async () => {
    const admin = await sessionFor(a.server, { role: 'admin' });
    const loggedOut = await signInEthereum(a.server);
    const demoted = await sessionFor(a.server, { role: 'admin' });
    expect((await a.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: loggedOut.headers })).statusCode).toBe(204);
    expect((await a.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${demoted.account.wallet}/role`, headers: admin.headers, payload: { role: 'trader' } })).statusCode).toBe(200);
    for (const s of [a, b]) {
      expect(code(await account(s, loggedOut.headers))).toBe('token_revoked');
      expect((await account(s, demoted.headers)).json().role).toBe('trader');
    }

    await emptySharedState(isolation);

    for (const s of [b, a]) {
      expect(code(await account(s, loggedOut.headers))).toBe('token_revoked');
      expect((await account(s, demoted.headers)).json().role).toBe('trader');
      const adminRoute = await s.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', headers: demoted.headers });
      expect(code(adminRoute)).toBe('forbidden_role');
    }
    // A session that was never revoked still works.
    expect((await account(b, admin.headers)).statusCode).toBe(200);
  });

  it('revoked, suspended and regenerated API keys stay refused after the loss', async () => {
    // The loss in the test before is noticed by now; requests signed from here on are after it.
    for (const s of [a, b]) await s.server.services.securitySync.runOnce();
    clock.advance(2_500);
    const owner = await session(a);
    const admin = await sessionFor(a.server, { role: 'admin' });
    const revoked = await createKey(a, owner.headers, { label: 'revoked', scopes: ['orders:read'] });
    const suspended = await createKey(a, owner.headers, { label: 'suspended', scopes: ['orders:read'] });
    const regenerated = await createKey(a, owner.headers, { label: 'regenerated', scopes: ['orders:read'] });
    // Every server has each key cached, so a lost version flag would matter.
    for (const s of [a, b]) for (const k of [revoked, suspended, regenerated]) expect((await signed(s, credentialOf(k), { url: '/api/v1/trading/probe' })).statusCode).toBe(200);

    expect((await a.app.inject({ method: 'DELETE', url: `/api/v1/keys/${revoked.id}`, headers: owner.headers })).statusCode).toBeLessThan(300);
    expect((await a.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${suspended.id}/suspend`, headers: admin.headers, payload: {} })).statusCode).toBe(200);
    const regen = await a.app.inject({ method: 'POST', url: `/api/v1/keys/${regenerated.id}/regenerate`, headers: owner.headers, payload: { gracePeriodSeconds: 60 } });
    expect(regen.statusCode).toBe(200);
    const fresh = { apiKey: regenerated.apiKey, secret: regen.json().apiSecret as string };

    await emptySharedState(isolation);
    clock.advance(61_000); // the old secret's grace is over
    for (const s of [b, a]) {
      expect(code(await signed(s, credentialOf(revoked), { url: '/api/v1/trading/probe' }))).toBe('key_revoked');
      expect(code(await signed(s, credentialOf(suspended), { url: '/api/v1/trading/probe' }))).toBe('key_suspended');
      expect(code(await signed(s, credentialOf(regenerated), { url: '/api/v1/trading/probe' }))).toBe('invalid_signature');
    }
    // The new secret works for requests signed after the replay memory began again (the first
    // signed request to meet the loss dates it; see test/keys/replay.test.ts).
    expect(code(await signed(b, fresh, { url: '/api/v1/trading/probe?n=0', timestamp: clock.now() }))).toBe('timestamp_out_of_window');
    clock.advance(1_500);
    for (const [i, s] of [b, a].entries()) expect((await signed(s, fresh, { url: `/api/v1/trading/probe?n=${i + 1}`, timestamp: clock.now() })).statusCode).toBe(200);
  });
});
