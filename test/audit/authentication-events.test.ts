import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { postLogin, requestChallenge, ethereumWallet, signInEthereum } from '../support/wallet.js';

/**
 * api-security.txt, "Comprehensive Logging": "Authentication Events: All login attempts and token
 * generations" and "Administrative Actions: Security setting changes and key management"; and
 * "Failed Authentication Alerts" (what an operator alerts on: moondraft_security_events_total).
 * Driven through the real HTTP routes, read back from the stored, encrypted audit trail.
 */
describe('authentication events and key management reach the audit trail', () => {
  let server: TestServer;
  const CLIENT = '198.51.100.23';
  const UA = 'auth-events-test/1.0';
  const client = { remoteAddress: CLIENT, headers: { 'user-agent': UA } };

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  const recorded = async (type: string, accountId?: string) => {
    await server.services.audit.settle();
    return (await server.services.audit.list({ type, ...(accountId ? { accountId } : {}) }, { limit: 50 })).records;
  };
  const metric = async (type: string): Promise<number> => {
    const text = await server.services.metrics.text(); // rendered now (a scrape reuses one rendering for a second)
    const line = text.split('\n').find((l) => l.startsWith(`moondraft_security_events_total{type="${type}"}`));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  };

  it('a successful wallet login is recorded with its account, session, wallet, client address and user agent', async () => {
    const s = await signInEthereum(server, undefined, client);
    const [record, ...more] = await recorded('auth.signin.succeeded', s.account.id);
    expect(more).toHaveLength(0);
    expect(record).toMatchObject({
      category: 'authentication',
      outcome: 'success',
      accountId: s.account.id,
      ip: CLIENT,
      userAgent: UA,
      readable: true,
      details: { sessionId: s.sessionId, chain: 'ethereum', wallet: s.account.wallet },
    });
    // Nothing of the credentials is in it.
    expect(JSON.stringify(record)).not.toContain(s.accessToken);
    expect(JSON.stringify(record)).not.toContain(s.refreshToken);
  });

  it('a refused login is recorded as a failure, with the client address, and counted for alerting', async () => {
    const before = await metric('signin.failed');
    const wallet = ethereumWallet();
    const other = ethereumWallet();
    const { message } = await requestChallenge(server, wallet.address, 'ethereum', client);
    const signature = await other.sign(message);
    const res = await postLogin(server, message, signature, client);
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('invalid_credentials');
    const failed = (await recorded('auth.signin.failed')).filter((r) => r.details?.wallet === wallet.address.toLowerCase() || r.details?.wallet === wallet.address);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ category: 'authentication', outcome: 'failure', ip: CLIENT, userAgent: UA });
    expect(JSON.stringify(failed[0])).not.toContain(signature.slice(2, 40));
    expect(await metric('signin.failed')).toBe(before + 1);
  });

  it('every token generation by refresh is recorded for the session, and a reuse is recorded as denied', async () => {
    const s = await signInEthereum(server, undefined, client);
    const first = await server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: s.refreshToken }, ...client });
    expect(first.statusCode).toBe(200);
    const second = await server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: first.json().refreshToken }, ...client });
    expect(second.statusCode).toBe(200);
    const refreshed = await recorded('auth.token.refreshed', s.account.id);
    expect(refreshed).toHaveLength(2);
    for (const r of refreshed) expect(r).toMatchObject({ outcome: 'success', accountId: s.account.id, ip: CLIENT, details: { sessionId: s.sessionId } });

    const reuse = await server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: s.refreshToken }, ...client });
    expect(reuse.json().code).toBe('refresh_token_reused');
    expect(await recorded('auth.refresh_token_reused', s.account.id)).toEqual([expect.objectContaining({ outcome: 'denied', details: expect.objectContaining({ sessionId: s.sessionId }) })]);
  });

  it('a forged access token is recorded as a denied authentication and counted for alerting', async () => {
    const before = await metric('auth.failed');
    const s = await signInEthereum(server);
    const forged = `${s.accessToken.slice(0, -4)}AAAA`;
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: `Bearer ${forged}`, 'user-agent': UA }, remoteAddress: '198.51.100.77' });
    expect(res.json().code).toBe('invalid_token');
    const denied = (await recorded('auth.failed')).filter((r) => r.ip === '198.51.100.77');
    expect(denied).toEqual([expect.objectContaining({ category: 'authentication', outcome: 'denied', details: expect.objectContaining({ code: 'invalid_token' }) })]);
    expect(JSON.stringify(denied)).not.toContain(forged);
    expect(await metric('auth.failed')).toBe(before + 1);
  });

  it('changing a key’s security settings and regenerating it are recorded, naming who did it', async () => {
    const s = await signInEthereum(server);
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: s.headers, payload: { label: 'bot', scopes: ['orders:read'] } });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    const patched = await server.app.inject({ method: 'PATCH', url: `/api/v1/keys/${id}`, headers: s.headers, payload: { ipWhitelist: ['203.0.113.0/24'], allowedCountries: ['DE'] } });
    expect(patched.statusCode).toBe(200);
    const regenerated = await server.app.inject({ method: 'POST', url: `/api/v1/keys/${id}/regenerate`, headers: s.headers, payload: {} });
    expect(regenerated.statusCode).toBe(200);
    const secret = regenerated.json().apiSecret as string;

    for (const type of ['admin.key.created', 'admin.key.updated', 'admin.key.regenerated']) {
      const rows = (await recorded(type, s.account.id)).filter((r) => r.details?.keyId === id);
      expect(rows, type).toHaveLength(1);
      expect(rows[0], type).toMatchObject({ category: 'admin', outcome: 'success', accountId: s.account.id, actorId: s.account.id });
      expect(JSON.stringify(rows[0])).not.toContain(secret);
      expect(JSON.stringify(rows[0])).not.toContain(created.json().apiSecret);
    }
  });
});
