import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { StateUnavailableError } from '../../src/state/port.js';
import type { SecurityEvent } from '../../src/security/events/index.js';
import { hashRefreshToken, REVOCATION_MARGIN_MS, Sessions } from '../../src/security/identity/sessions.js';
import { SignInNonces } from '../../src/security/identity/nonces.js';
import { SignIn } from '../../src/security/identity/sign-in.js';
import { gateAfterRead, gated } from '../support/gate.js';
import { sessionFor } from '../support/auth.js';
import { serviceAvailable } from '../support/services.js';
import { newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { signInEthereum, signInSolana, type SignedIn } from '../support/wallet.js';

const backends = [
  { backend: 'embedded' as const, available: async () => true },
  { backend: 'scaleout' as const, available: async () => (await serviceAvailable('postgres')) && (await serviceAvailable('redis')) },
];

function refresh(server: TestServer, refreshToken: string) {
  return server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken } });
}

async function account(server: TestServer, s: { headers: { authorization: string } }) {
  const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: s.headers });
  return { status: res.statusCode, code: res.json().code as string | undefined };
}

function collect(server: TestServer): SecurityEvent[] {
  const events: SecurityEvent[] = [];
  server.services.events.subscribe((e) => void events.push(e));
  return events;
}

describe.each(backends)('refresh tokens and revocation on $backend', ({ backend, available }) => {
  let server: TestServer;
  let events: SecurityEvent[];
  let skip = false;
  beforeAll(async () => {
    skip = !(await available());
    if (skip) return;
    server = await startTestServer({ backend });
    events = collect(server);
  });
  afterAll(async () => {
    if (!skip) await server.close();
  });

  it('refresh rotates: a new pair for the same session; only the hash is stored', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInEthereum(server);
    const res = await refresh(server, s.refreshToken);
    expect(res.statusCode).toBe(200);
    const next = res.json();
    expect(next).toMatchObject({ tokenType: 'Bearer', expiresIn: 3600, sessionId: s.sessionId, account: { id: s.account.id } });
    expect(next.refreshToken).not.toBe(s.refreshToken);
    expect(next.accessToken).not.toBe(s.accessToken);
    expect((await account(server, { headers: { authorization: `Bearer ${next.accessToken}` } })).status).toBe(200);
    const rows = await server.services.store.db.selectFrom('refresh_tokens').selectAll().where('session_id', '=', s.sessionId).orderBy('created_at').execute();
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.token_hash).sort()).toEqual([hashRefreshToken(s.refreshToken), hashRefreshToken(next.refreshToken)].sort());
    expect(JSON.stringify(rows)).not.toContain(s.refreshToken.slice(4));
    expect(events.some((e) => e.type === 'token.refreshed' && e.sessionId === s.sessionId)).toBe(true);
  });

  it('presenting a spent refresh token revokes the whole session (refresh_token_reused)', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInSolana(server);
    const second = (await refresh(server, s.refreshToken)).json();
    const reuse = await refresh(server, s.refreshToken);
    expect(reuse.statusCode).toBe(401);
    expect(reuse.json().code).toBe('refresh_token_reused');
    expect(events.find((e) => e.type === 'refresh_token_reused' && e.sessionId === s.sessionId)).toMatchObject({ accountId: s.account.id });
    expect(events.find((e) => e.type === 'session.revoked' && e.sessionId === s.sessionId)).toMatchObject({ by: 'reuse' });
    // Everything of that session stops at once: the thief's pair and the owner's.
    expect(await account(server, { headers: { authorization: `Bearer ${second.accessToken}` } })).toEqual({ status: 401, code: 'token_revoked' });
    expect(await account(server, s)).toEqual({ status: 401, code: 'token_revoked' });
    expect((await refresh(server, second.refreshToken)).json().code).toBe('token_revoked');
    const ttl = await server.services.state.ttl(`sess:revoked:${s.sessionId}`);
    expect(ttl).toBeGreaterThan(3_600_000);
    expect(ttl).toBeLessThanOrEqual(3_630_000 + REVOCATION_MARGIN_MS);
    const row = await server.services.store.db.selectFrom('sessions').select(['revoked_at', 'revoked_reason']).where('id', '=', s.sessionId).executeTakeFirstOrThrow();
    expect(row.revoked_reason).toBe('refresh_token_reused');
  });

  it('a spent token presented after logout is reuse, but records no second revocation', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInSolana(server);
    const next = (await refresh(server, s.refreshToken)).json();
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { authorization: `Bearer ${next.accessToken}` } })).statusCode).toBe(204);
    for (let i = 0; i < 2; i++) expect((await refresh(server, s.refreshToken)).json().code).toBe('refresh_token_reused');
    const mine = events.filter((e) => 'sessionId' in e && e.sessionId === s.sessionId);
    expect(mine.filter((e) => e.type === 'refresh_token_reused')).toHaveLength(2);
    // The session was revoked once, by the logout: the audit trail must not say the reuse did it.
    expect(mine.filter((e) => e.type === 'session.revoked').map((e) => (e as { by: string }).by)).toEqual(['logout']);
    const row = await server.services.store.db.selectFrom('sessions').select('revoked_reason').where('id', '=', s.sessionId).executeTakeFirstOrThrow();
    expect(row.revoked_reason).toBe('logout');
  });

  it('a refresh never spends its token and then fails: a failing account read does not cost the session', async ({ skip: skipTest }) => {
    if (!available) return skipTest();
    const s = await signInEthereum(server);
    // Reading the account fails during the first refresh attempt (a database blip).
    const accounts = server.services.accounts;
    const byId = accounts.byId.bind(accounts);
    let blip = true;
    accounts.byId = async (id: string) => {
      if (blip) throw new Error('test: database blip');
      return byId(id);
    };
    try {
      let res = await refresh(server, s.refreshToken);
      blip = false;
      // Whatever this attempt answered, the client's retry with the same token must not be reuse.
      if (res.statusCode !== 200) res = await refresh(server, s.refreshToken);
      expect(res.statusCode).toBe(200);
      const next = res.json() as { accessToken: string; refreshToken: string };
      expect(await account(server, { headers: { authorization: `Bearer ${next.accessToken}` } })).toMatchObject({ status: 200 });
      expect((await refresh(server, next.refreshToken)).statusCode).toBe(200);
    } finally {
      accounts.byId = byId;
    }
  });

  it('two concurrent refreshes with the same token: exactly one wins, the other is reuse', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    for (let round = 0; round < 4; round++) {
      const s = await signInEthereum(server);
      const results = await Promise.all([refresh(server, s.refreshToken), refresh(server, s.refreshToken), refresh(server, s.refreshToken)]);
      const statuses = results.map((r) => r.statusCode).sort();
      expect(statuses).toEqual([200, 401, 401]);
      for (const r of results.filter((x) => x.statusCode === 401)) expect(r.json().code).toBe('refresh_token_reused');
      const issued = await server.services.store.db.selectFrom('refresh_tokens').select('token_hash').where('session_id', '=', s.sessionId).execute();
      expect(issued).toHaveLength(2); // the original and exactly one successor
    }
  });

  it('logout refuses the session token at once, even one the verifier has cached', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInEthereum(server);
    expect((await account(server, s)).status).toBe(200);
    const out = await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers });
    expect(out.statusCode).toBe(204);
    expect(await account(server, s)).toEqual({ status: 401, code: 'token_revoked' });
    expect((await refresh(server, s.refreshToken)).json().code).toBe('token_revoked');
    expect(events.find((e) => e.type === 'session.revoked' && e.sessionId === s.sessionId)).toMatchObject({ by: 'logout', accountId: s.account.id });
  });

  it('a revoked session token used again, and a garbled Authorization, are recorded as auth.failed', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInEthereum(server);
    await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers });
    const before = events.length;
    expect(await account(server, s)).toEqual({ status: 401, code: 'token_revoked' });
    expect(await account(server, { headers: { authorization: 'Bearer not-a-token' } })).toEqual({ status: 401, code: 'invalid_token' });
    const failed = events.slice(before).filter((e) => e.type === 'auth.failed');
    expect(failed).toEqual([
      expect.objectContaining({ code: 'token_revoked', accountId: s.account.id, ip: '127.0.0.1' }),
      expect.objectContaining({ code: 'invalid_token', ip: '127.0.0.1' }),
    ]);
  });

  it('a refused refresh token is recorded as auth.failed (with the account when its session is known)', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInSolana(server);
    await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers });
    const before = events.length;
    expect((await refresh(server, s.refreshToken)).json().code).toBe('token_revoked');
    expect((await refresh(server, `mdr_${'A'.repeat(43)}`)).json().code).toBe('invalid_token');
    expect((await refresh(server, 'garbage')).json().code).toBe('invalid_token');
    expect(events.slice(before).filter((e) => e.type === 'auth.failed')).toEqual([
      expect.objectContaining({ code: 'token_revoked', accountId: s.account.id, ip: '127.0.0.1' }),
      expect.objectContaining({ code: 'invalid_token', accountId: undefined, ip: '127.0.0.1' }),
      expect.objectContaining({ code: 'invalid_token', accountId: undefined, ip: '127.0.0.1' }),
    ]);
  });

  it('logout needs a session: anonymous is 401, an API key cannot do it', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout' })).json().code).toBe('unauthenticated');
  });

  it('lists sessions with created, last used, truncated IP and user agent', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const phone = await signInEthereum(server, undefined, { remoteAddress: '203.0.113.77', headers: { 'user-agent': 'Phone/1.0 \u0007bell' } });
    const laptop = await signInEthereum(server, phone.wallet.privateKey, { remoteAddress: '2001:db8:abcd:12::9', headers: { 'user-agent': 'Laptop/2.0' } });
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/security/sessions', headers: laptop.headers });
    expect(res.statusCode).toBe(200);
    const { sessions } = res.json();
    expect(sessions).toHaveLength(2);
    const [newest, older] = sessions;
    expect(newest).toMatchObject({ id: laptop.sessionId, ip: '2001:db8:abcd::/48', userAgent: 'Laptop/2.0', current: true, chain: 'ethereum' });
    expect(older).toMatchObject({ id: phone.sessionId, ip: '203.0.113.0/24', userAgent: 'Phone/1.0 bell', current: false });
    for (const s of sessions) {
      expect(s.createdAt).toBeTypeOf('number');
      expect(s.lastUsedAt).toBeGreaterThanOrEqual(s.createdAt);
      expect(s.expiresAt).toBe(s.createdAt + 30 * 86_400_000);
    }
    expect(res.body).not.toContain('203.0.113.77');
  });

  it('deletes one of your own sessions; another account’s session is not found', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const a = await signInEthereum(server);
    const a2 = await signInEthereum(server, a.wallet.privateKey);
    const stranger = await signInEthereum(server);
    const del = (who: SignedIn, id: string) => server.app.inject({ method: 'DELETE', url: `/api/v1/security/sessions/${id}`, headers: who.headers });

    const theft = await del(stranger, a2.sessionId);
    expect(theft.statusCode).toBe(404);
    expect(theft.json().code).toBe('not_found');
    expect((await account(server, a2)).status).toBe(200);

    expect((await del(a, a2.sessionId)).statusCode).toBe(204);
    expect(await account(server, a2)).toEqual({ status: 401, code: 'token_revoked' });
    expect((await account(server, a)).status).toBe(200);
    expect((await del(a, a2.sessionId)).statusCode).toBe(204); // idempotent
    expect((await del(a, 'ses_01NOSUCHSESSION000000000000')).statusCode).toBe(404);
    expect((await del(a, "1' OR '1'='1")).statusCode).toBe(400);
    const list = (await server.app.inject({ method: 'GET', url: '/api/v1/security/sessions', headers: a.headers })).json().sessions;
    expect(list.map((s: { id: string }) => s.id)).toEqual([a.sessionId]);
  });

  it('an admin revokes every session of an account at once', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const victim = await signInEthereum(server);
    const victim2 = await signInEthereum(server, victim.wallet.privateKey);
    const admin = await sessionFor(server, { role: 'admin' });
    const url = `/api/v1/admin/accounts/${victim.wallet.address}/revoke-sessions`;

    const trader = await signInEthereum(server);
    const refused = await server.app.inject({ method: 'POST', url, headers: trader.headers });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().code).toBe('forbidden_role');
    expect((await account(server, victim)).status).toBe(200);

    const res = await server.app.inject({ method: 'POST', url, headers: admin.headers });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ revoked: 2 });
    for (const s of [victim, victim2]) {
      expect(await account(server, s)).toEqual({ status: 401, code: 'token_revoked' });
      expect((await refresh(server, s.refreshToken)).json().code).toBe('token_revoked');
    }
    expect(events.filter((e) => e.type === 'session.revoked' && e.accountId === victim.account.id && e.by === 'admin')).toHaveLength(2);
    // The audit trail names the admin who revoked them.
    await (server.services.audit as unknown as { settle?: () => Promise<void> }).settle?.();
    const recorded = (await server.services.audit.list({ type: 'auth.session.revoked', accountId: victim.account.id }, { limit: 10 })).records;
    expect(recorded.map((r) => r.actorId)).toEqual([admin.account.id, admin.account.id]);
    expect((await server.app.inject({ method: 'POST', url, headers: admin.headers })).json()).toEqual({ revoked: 0 });
    const unknown = await server.app.inject({ method: 'POST', url: '/api/v1/admin/accounts/0x0000000000000000000000000000000000000001/revoke-sessions', headers: admin.headers });
    expect(unknown.statusCode).toBe(404);
  });
});

/** Makes writes of session revocations to `server`'s shared state fail (as when Redis is down); returns the undo. */
function failRevocationWrites(server: TestServer): () => void {
  const state = server.services.state;
  const set = state.set.bind(state);
  state.set = async (key: string, value: string, ttlMs?: number) => {
    if (key.startsWith('sess:revoked:')) throw new StateUnavailableError('test: shared state down');
    return set(key, value, ttlMs);
  };
  return () => {
    state.set = set;
  };
}

describe('scale-out: a revocation on one process is refused by another at once', () => {
  let a: TestServer;
  let b: TestServer;
  let skip = false;
  beforeAll(async () => {
    skip = !((await serviceAvailable('postgres')) && (await serviceAvailable('redis')));
    if (skip) return;
    const isolation = newIsolation();
    a = await startTestServer({ backend: 'scaleout', isolation });
    b = await startTestServer({ backend: 'scaleout', isolation, dataDir: a.dataDir });
  });
  afterAll(async () => {
    if (skip) return;
    await b.close();
    await a.close();
    const { dropSchema } = await import('../support/server.js');
    await dropSchema(a.config.pgSchema);
  });

  it('logout on A, refused on B; concurrent refresh on A and B: one wins', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInEthereum(a);
    expect((await account(b, s)).status).toBe(200);
    await a.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers });
    expect(await account(b, s)).toEqual({ status: 401, code: 'token_revoked' });

    const t = await signInEthereum(b);
    const [ra, rb] = await Promise.all([refresh(a, t.refreshToken), refresh(b, t.refreshToken)]);
    expect([ra.statusCode, rb.statusCode].sort()).toEqual([200, 401]);
    expect([ra, rb].find((r) => r.statusCode === 401)!.json().code).toBe('refresh_token_reused');
  });

  it('an admin revoke-all whose revocations did not reach shared state takes effect on every server when retried', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const admin = await sessionFor(a, { role: 'admin' });
    const s = await signInEthereum(a);
    expect((await account(b, s)).status).toBe(200);
    const restore = failRevocationWrites(a);
    const revokeAll = () => a.app.inject({ method: 'POST', url: `/api/v1/admin/accounts/${s.account.wallet}/revoke-sessions`, headers: admin.headers });
    try {
      expect((await revokeAll()).statusCode).toBe(503);
    } finally {
      restore();
    }
    const retried = await revokeAll();
    expect(retried.statusCode).toBe(200);
    expect(await account(b, s)).toEqual({ status: 401, code: 'token_revoked' });
  });

  it('a logout whose revocation did not reach shared state takes effect on every server when retried', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInEthereum(a);
    expect((await account(b, s)).status).toBe(200);
    // Shared state fails while the revocation is written: the session row is revoked, the client hears 503.
    const restore = failRevocationWrites(a);
    try {
      expect((await a.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers })).statusCode).toBe(503);
    } finally {
      restore();
    }
    // The client retries and is told the session is revoked: no server may accept its token now.
    expect((await a.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers })).statusCode).toBe(204);
    expect(await account(b, s)).toEqual({ status: 401, code: 'token_revoked' });
    expect(await account(a, s)).toEqual({ status: 401, code: 'token_revoked' });
    // The revocation is in the audit trail once: recorded when it committed, not after the failed publish.
    await (a.services.audit as unknown as { settle?: () => Promise<void> }).settle?.();
    const recorded = (await a.services.audit.list({ type: 'auth.session.revoked', accountId: s.account.id }, { limit: 10 })).records;
    expect(recorded.map((r) => r.details?.sessionId)).toEqual([s.sessionId]);
  });
});

describe('session lifetimes and last-used (embedded, manual clock)', () => {
  const clock = new ManualClock(Date.UTC(2026, 6, 1));
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  it('idle expiry: no refresh for 7 days ends the session', async () => {
    const s = await signInEthereum(server);
    clock.advance(7 * 86_400_000 - 1000);
    const ok = await refresh(server, s.refreshToken);
    expect(ok.statusCode).toBe(200);
    clock.advance(7 * 86_400_000);
    const late = await refresh(server, ok.json().refreshToken);
    expect(late.statusCode).toBe(401);
    expect(late.json().code).toBe('token_expired');
  });

  it('absolute expiry: refreshing every 6 days still ends at 30 days', async () => {
    const s = await signInEthereum(server);
    let token = s.refreshToken;
    for (let day = 6; day < 30; day += 6) {
      clock.advance(6 * 86_400_000);
      const r = await refresh(server, token);
      expect(r.statusCode, `day ${day}`).toBe(200);
      token = r.json().refreshToken;
    }
    clock.advance(6 * 86_400_000); // day 30
    expect((await refresh(server, token)).json().code).toBe('token_expired');
  });

  it('absolute expiry: an access token from a refresh just before it ends with the session, not an access lifetime later', async () => {
    const s = await signInEthereum(server);
    const end = (await server.services.sessions.list(s.account.id)).find((x) => x.id === s.sessionId)!.expiresAt;
    let token = s.refreshToken;
    for (let day = 6; day < 30; day += 6) {
      clock.advance(6 * 86_400_000); // within the idle lifetime
      token = (await refresh(server, token)).json().refreshToken;
    }
    clock.set(end - 10 * 60_000);
    const r = await refresh(server, token);
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().expiresIn).toBeLessThanOrEqual(600);
    const exp = JSON.parse(Buffer.from(r.json().accessToken.split('.')[1], 'base64url').toString()).exp;
    expect(exp * 1000).toBeLessThanOrEqual(end);
    const headers = { authorization: `Bearer ${r.json().accessToken}` };
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/account', headers })).statusCode).toBe(200);
    clock.set(end + 31_000); // past the verifier's 30 s clock tolerance
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/account', headers })).json().code).toBe('token_expired');
    await server.services.sessions.flushActivity(); // this session's last use, written now rather than in the next test's count
  });

  it('last used is written at most once a minute, after the response', async () => {
    const s = await signInEthereum(server);
    const lastUsed = async () =>
      Number((await server.services.store.db.selectFrom('sessions').select('last_used_at').where('id', '=', s.sessionId).executeTakeFirstOrThrow()).last_used_at);
    const start = await lastUsed();
    let writes = 0;
    const db = server.services.store.db;
    const spy = db.updateTable.bind(db);
    (db as { updateTable: typeof db.updateTable }).updateTable = ((table: never) => {
      if (table === 'sessions') writes++;
      return spy(table);
    }) as typeof db.updateTable;
    try {
      clock.advance(10_000);
      await account(server, s);
      expect(await lastUsed()).toBe(start); // not written on the request path
      await server.services.sessions.flushActivity();
      expect(await lastUsed()).toBe(start + 10_000);
      for (let i = 0; i < 5; i++) {
        clock.advance(5_000);
        await account(server, s);
      }
      await server.services.sessions.flushActivity();
      expect(await lastUsed()).toBe(start + 10_000);
      expect(writes).toBe(1);
      clock.advance(40_000);
      await account(server, s);
      await server.services.sessions.flushActivity();
      expect(await lastUsed()).toBe(start + 75_000);
      expect(writes).toBe(2);
    } finally {
      (db as { updateTable: typeof db.updateTable }).updateTable = spy;
    }
  });

  it('a flush that fails part-way keeps what it did not write for the next one', async () => {
    const a = await signInEthereum(server);
    const b = await signInEthereum(server);
    const lastUsed = async (sessionId: string) => Number((await server.services.store.db.selectFrom('sessions').select('last_used_at').where('id', '=', sessionId).executeTakeFirstOrThrow()).last_used_at);
    clock.advance(120_000);
    await account(server, a);
    await account(server, b);
    const state = server.services.state;
    const setIfAbsent = state.setIfAbsent.bind(state);
    state.setIfAbsent = async () => {
      throw new StateUnavailableError('test: shared state down');
    };
    try {
      await expect(server.services.sessions.flushActivity()).rejects.toThrow(StateUnavailableError);
    } finally {
      state.setIfAbsent = setIfAbsent;
    }
    await server.services.sessions.flushActivity();
    expect(await lastUsed(a.sessionId)).toBe(clock.now());
    expect(await lastUsed(b.sessionId)).toBe(clock.now());
  });
});

describe('session last-used when the store fails (embedded, manual clock)', () => {
  const clock = new ManualClock(Date.UTC(2026, 6, 1));
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  it('a session whose write failed after its once-a-minute claim is written by the next flush', async () => {
    const s = await signInEthereum(server);
    const lastUsed = async () => Number((await server.services.store.db.selectFrom('sessions').select('last_used_at').where('id', '=', s.sessionId).executeTakeFirstOrThrow()).last_used_at);
    clock.advance(120_000);
    await account(server, s);
    const db = server.services.store.db;
    const updateTable = db.updateTable.bind(db);
    (db as { updateTable: unknown }).updateTable = () => {
      throw new Error('test: store down');
    };
    try {
      await expect(server.services.sessions.flushActivity()).rejects.toThrow(/store down/);
    } finally {
      (db as { updateTable: typeof db.updateTable }).updateTable = updateTable;
    }
    // The store is back; nothing else happened to the session.
    await server.services.sessions.flushActivity();
    expect(await lastUsed()).toBe(clock.now());
  });
});

describe('refresh-token reuse racing the rotation it lost to (embedded, manual clock)', () => {
  const clock = new ManualClock(Date.UTC(2026, 6, 1));
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  /** Sessions and sign-in on the server's store, each transaction paused by a gate after it reads `accounts`. */
  const gatedSignIn = () => {
    const { store, state, events, config, accounts, accessTokens, keyring } = server.services;
    const gate = gateAfterRead('accounts');
    const lifetimeMs = (config.jwt.accessTtlSec + config.jwt.clockToleranceSec) * 1000;
    const options = { refreshAbsoluteMs: config.jwt.refreshAbsoluteSec * 1000, refreshIdleMs: config.jwt.refreshIdleSec * 1000, accessTokenLifetimeMs: lifetimeMs };
    const sessions = new Sessions({ store: gated(store, gate.plugin), state, clock, events, options, onError: () => undefined });
    const signIn = new SignIn({ config, clock, nonces: new SignInNonces(keyring, state), accounts, sessions, accessTokens, events });
    return { gate, lifetimeMs, sessions, signIn };
  };

  it('the winner’s access token stays refused for its whole life, however long the reuse waited for it', async () => {
    const s = await signInEthereum(server);
    // The winning rotation pauses inside its transaction; the reuse (same token) waits behind it.
    const { gate, lifetimeMs, signIn } = gatedSignIn();
    const client = { ip: '127.0.0.1', userAgent: 'test', requestId: 'req' };
    gate.arm();
    const winning = signIn.refresh(s.refreshToken, client);
    await gate.reached;
    const reusing = signIn.refresh(s.refreshToken, client);
    clock.advance(2_000);
    gate.release();
    const [won, reused] = await Promise.all([winning, reusing]);
    expect(won.ok).toBe(true);
    expect(reused.ok ? undefined : reused.code).toBe('refresh_token_reused');
    const stolen = { headers: { authorization: `Bearer ${won.ok ? won.value.accessToken : ''}` } };
    expect(await account(server, stolen)).toMatchObject({ status: 401, code: 'token_revoked' });
    // Until the token itself expires, its session stays revoked.
    clock.advance(lifetimeMs - 1_000);
    expect((await account(server, stolen)).status).toBe(401);
  });

  it('a logout that waited behind a refresh keeps refusing the token that refresh issued, for its whole life', async () => {
    const s = await signInEthereum(server);
    const { gate, lifetimeMs, sessions, signIn } = gatedSignIn();
    const client = { ip: '127.0.0.1', userAgent: 'test', requestId: 'req' };
    gate.arm();
    // The refresh pauses inside its transaction; the logout, dated now, waits behind it…
    const refreshing = signIn.refresh(s.refreshToken, client);
    await gate.reached;
    const loggedOutAt = clock.now();
    const logout = sessions.revoke(s.account.id, s.sessionId, 'logout', client);
    // …for two seconds, and the refresh's token is issued after them.
    clock.advance(2_000);
    gate.release();
    const [refreshed] = await Promise.all([refreshing, logout]);
    expect(refreshed.ok).toBe(true);
    const late = { headers: { authorization: `Bearer ${refreshed.ok ? refreshed.value.accessToken : ''}` } };
    expect(await account(server, late)).toMatchObject({ status: 401, code: 'token_revoked' });
    // Past the logout's time plus a token's life the late token still lives (it was issued 2 s
    // later), and its session is still revoked.
    clock.set(loggedOutAt + lifetimeMs + 500);
    expect(await account(server, late)).toMatchObject({ status: 401, code: 'token_revoked' });
  });
});
