import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MAX_LIVE_SESSIONS } from '../../src/security/identity/sessions.js';
import { startTestServer, type TestServer } from '../support/server.js';
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
