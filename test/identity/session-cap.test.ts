import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sql } from 'kysely';
import { ManualClock } from '../../src/lib/clock.js';
import { MAX_LIVE_SESSIONS } from '../../src/security/identity/sessions.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { signInEthereum } from '../support/wallet.js';

// Every sign-in opens a session, and the list shows at most 200: without a bound, sessions past
// it stayed live (usable by whoever held their tokens) but could neither be seen nor revoked one by one.
describe('live sessions per account', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend: 'embedded' });
  });
  afterAll(() => server.close());

  it(`keeps at most ${MAX_LIVE_SESSIONS}: a sign-in beyond ends the oldest, whose tokens are refused`, async () => {
    const first = await signInEthereum(server);
    const client = { ip: '127.0.0.1', userAgent: 'loop', requestId: 'r' };
    for (let i = 0; i < 250; i++) {
      await server.services.sessions.start({ accountId: first.account.id, chain: 'ethereum', authTimeMs: Date.now(), client });
    }
    const last = await signInEthereum(server, first.wallet.privateKey);
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/security/sessions', headers: last.headers });
    const sessions = (res.json() as { sessions: { id: string; current: boolean }[] }).sessions;
    expect(sessions).toHaveLength(MAX_LIVE_SESSIONS);
    expect(sessions[0]).toMatchObject({ id: last.sessionId, current: true });
    const live = await server.services.store.db
      .selectFrom('sessions')
      .select('id')
      .where('account_id', '=', first.account.id)
      .where('revoked_at', 'is', null)
      .execute();
    expect(live).toHaveLength(MAX_LIVE_SESSIONS);
    // The oldest session ended: its access token and its refresh token are refused.
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: first.headers })).json().code).toBe('token_revoked');
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: first.refreshToken } })).json().code).toBe('token_revoked');
  });
  it('a session the cap ended is audited even when writing its revocation to shared state fails', async () => {
    const first = await signInEthereum(server);
    const client = { ip: '127.0.0.1', userAgent: 'loop', requestId: 'r' };
    const { sessions } = server.services;
    for (let i = 1; i < MAX_LIVE_SESSIONS; i++) await sessions.start({ accountId: first.account.id, chain: 'ethereum', authTimeMs: Date.now(), client });
    // A shared-state blip as the 101st sign-in ends the oldest: the sign-in fails (503), but the
    // session is revoked in the database (the security sync publishes it later) and must be audited.
    const spy = vi.spyOn(sessions, 'publishRevocation').mockRejectedValueOnce(Object.assign(new Error('redis down'), { code: 'ECONNREFUSED' }));
    try {
      await expect(sessions.start({ accountId: first.account.id, chain: 'ethereum', authTimeMs: Date.now(), client })).rejects.toThrow('redis down');
    } finally {
      spy.mockRestore();
    }
    const row = await server.services.store.db.selectFrom('sessions').select(['revoked_reason']).where('id', '=', first.sessionId).executeTakeFirstOrThrow();
    expect(row.revoked_reason).toBe('limit');
    await server.services.audit.settle();
    const revoked = [];
    for await (const v of server.services.audit.export({ type: 'auth.session.revoked' })) revoked.push(v.details);
    expect(revoked).toContainEqual(expect.objectContaining({ sessionId: first.sessionId, by: 'limit' }));
  });
});

const capScaleout = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

describe.each((['embedded', 'scaleout'] as const).filter((b) => b === 'embedded' || capScaleout))('the session cap is part of the sign-in (%s)', (backend) => {
  // Every session below is made in the same millisecond.
  const clock = new ManualClock(Date.UTC(2026, 6, 1));
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend, clock });
  });
  afterAll(() => server.close());

  const client = { ip: '127.0.0.1', userAgent: 'loop', requestId: 'r' };
  const rows = (accountId: string) => server.services.store.db.selectFrom('sessions').select(['id', 'revoked_reason']).where('account_id', '=', accountId).orderBy('id').execute();

  it('a sign-in whose trim fails at the store leaves no session; one that commits leaves the newest 100, in id order within a millisecond', async () => {
    const first = await signInEthereum(server);
    const accountId = first.account.id;
    const made = [first.sessionId];
    for (let i = 1; i < MAX_LIVE_SESSIONS; i++) made.push((await server.services.sessions.start({ accountId, chain: 'ethereum', authTimeMs: clock.now(), client })).session.id);
    const { db } = server.services.store;
    // The store refuses to end a session for the cap (a failure in the middle of the sign-in).
    if (backend === 'embedded') {
      await sql`CREATE TRIGGER fail_trim BEFORE UPDATE OF revoked_at ON sessions WHEN NEW.revoked_reason = 'limit' BEGIN SELECT RAISE(ABORT, 'trim failed'); END`.execute(db);
    } else {
      await sql`CREATE FUNCTION fail_trim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.revoked_reason = 'limit' THEN RAISE EXCEPTION 'trim failed'; END IF; RETURN NEW; END $$`.execute(db);
      await sql`CREATE TRIGGER fail_trim BEFORE UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION fail_trim()`.execute(db);
    }
    try {
      await expect(server.services.sessions.start({ accountId, chain: 'ethereum', authTimeMs: clock.now(), client })).rejects.toThrow(/trim failed/);
    } finally {
      await sql`DROP TRIGGER fail_trim${sql.raw(backend === 'embedded' ? '' : ' ON sessions')}`.execute(db);
    }
    // Before, the failed sign-in's session had committed: 101 live until the next sign-in.
    expect(await rows(accountId)).toEqual(made.map((id) => ({ id, revoked_reason: null })));

    const next = await server.services.sessions.start({ accountId, chain: 'ethereum', authTimeMs: clock.now(), client });
    const after = await rows(accountId);
    expect(after.filter((r) => r.revoked_reason === null)).toHaveLength(MAX_LIVE_SESSIONS);
    // The first made ends, though all share one created_at.
    expect(after.filter((r) => r.revoked_reason !== null)).toEqual([{ id: first.sessionId, revoked_reason: 'limit' }]);
    await server.services.audit.settle();
    const revoked = [];
    for await (const v of server.services.audit.export({ type: 'auth.session.revoked' })) revoked.push(v.details);
    expect(revoked.filter((d) => d?.by === 'limit')).toEqual([expect.objectContaining({ sessionId: first.sessionId })]);
    // The list agrees with the cap: newest first, also within one millisecond.
    const listed = (await server.services.sessions.list(accountId)).map((s) => s.id);
    expect(listed).toEqual([...made.slice(1), next.session.id].reverse());
  });

  it('sign-ins at once still leave at most 100 live', async () => {
    const first = await signInEthereum(server);
    const accountId = first.account.id;
    for (let i = 1; i < MAX_LIVE_SESSIONS - 4; i++) await server.services.sessions.start({ accountId, chain: 'ethereum', authTimeMs: clock.now(), client });
    await Promise.all(Array.from({ length: 12 }, () => server.services.sessions.start({ accountId, chain: 'ethereum', authTimeMs: clock.now(), client })));
    expect((await rows(accountId)).filter((r) => r.revoked_reason === null)).toHaveLength(MAX_LIVE_SESSIONS);
  });
});
