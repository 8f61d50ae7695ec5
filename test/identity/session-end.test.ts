import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import { serviceAvailable } from '../support/services.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { signInEthereum } from '../support/wallet.js';

/**
 * API.md: "an access token never outlives its session's absolute end". The verifier's clock
 * tolerance (30 s by default) must not stretch a token capped at that end past it, neither on the
 * verified-token cache nor on the full check, on one process or another (scale-out).
 */
const backends = [
  { backend: 'embedded' as const, available: async () => true },
  { backend: 'scaleout' as const, available: async () => (await serviceAvailable('postgres')) && (await serviceAvailable('redis')) },
];

async function account(server: TestServer, token: string) {
  const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, code: res.json().code as string | undefined };
}

describe.each(backends)('no access token is accepted after its session ends, whatever the tolerance ($backend)', ({ backend, available }) => {
  const clock = new ManualClock(Date.UTC(2026, 6, 1));
  let a: TestServer;
  let b: TestServer; // a second process on scale-out (the same one embedded)
  let skip = false;
  beforeAll(async () => {
    skip = !(await available());
    if (skip) return;
    if (backend === 'scaleout') {
      const isolation = newIsolation();
      a = await startTestServer({ backend, isolation, clock });
      b = await startTestServer({ backend, isolation, clock, dataDir: a.dataDir });
    } else {
      a = b = await startTestServer({ clock });
    }
  });
  afterAll(async () => {
    if (skip) return;
    if (b !== a) await b.close();
    await a.close();
    if (backend === 'scaleout') await dropSchema(a.config.pgSchema);
  });

  it('a token capped at the session end is refused from that millisecond, cached or not, on every process', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    expect(a.config.jwt.clockToleranceSec).toBe(30);
    const s = await signInEthereum(a);
    const end = (await a.services.sessions.list(s.account.id)).find((x) => x.id === s.sessionId)!.expiresAt;
    const refresh = async (refreshToken: string) => {
      const r = await a.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken } });
      expect(r.statusCode, r.body).toBe(200);
      return r.json() as { accessToken: string; refreshToken: string; expiresIn: number };
    };
    let r = { refreshToken: s.refreshToken } as Awaited<ReturnType<typeof refresh>>;
    for (let day = 6; day < 30; day += 6) {
      clock.advance(6 * 86_400_000); // within the idle lifetime
      r = await refresh(r.refreshToken);
    }
    clock.set(end - 10 * 60_000);
    const seen = await refresh(r.refreshToken); // used before the end: in a's cache
    clock.set(end - 5 * 60_000);
    const unseen = await refresh(seen.refreshToken); // first presented after the end: the full check
    expect(unseen.expiresIn).toBe(300);

    clock.set(end - 1);
    expect(await account(a, seen.accessToken)).toEqual({ status: 200, code: undefined });
    for (const at of [end, end + 1, end + 29_999]) {
      clock.set(at);
      expect(await account(a, seen.accessToken), `cached, at end + ${at - end} ms`).toEqual({ status: 401, code: 'token_expired' });
      expect(await account(b, unseen.accessToken), `not cached, at end + ${at - end} ms`).toEqual({ status: 401, code: 'token_expired' });
      expect(await account(b, seen.accessToken), `other process, at end + ${at - end} ms`).toEqual({ status: 401, code: 'token_expired' });
    }
    await a.services.sessions.flushActivity();
  });

  it('the cache and the full check agree on when a token expires (its exp plus the tolerance)', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const { accessToken, claims } = await sessionFor(a); // no session end: exp is the lifetime
    const tokens = a.services.accessTokens;
    expect((await tokens.verify(accessToken)).ok).toBe(true); // now cached
    const edge = (claims.exp + a.config.jwt.clockToleranceSec) * 1000;
    for (const at of [claims.exp * 1000 - 1, claims.exp * 1000, claims.exp * 1000 + 10_000, edge - 1]) {
      clock.set(at);
      expect(tokens.verifiedBefore(accessToken), `cache at exp + ${at - claims.exp * 1000} ms`).toEqual(claims);
      expect((await tokens.verify(accessToken)).ok).toBe(true);
    }
    clock.set(edge);
    expect(tokens.verifiedBefore(accessToken)).toBeUndefined();
    const late = await tokens.verify(accessToken);
    expect(late.ok ? 'ok' : late.code).toBe('token_expired');
  });
});
