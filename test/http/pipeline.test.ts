import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

describe('authenticate and authorize stages', () => {
  it('refuses an anonymous call to a protected route with unauthenticated', async () => {
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/account' });
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('unauthenticated');
  });

  it('accepts a valid session token', async () => {
    const s = await sessionFor(server);
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: s.headers });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: s.account.id, wallet: s.account.wallet, role: 'trader' });
  });

  it('accepts the Bearer scheme name in any case (it is case-insensitive)', async () => {
    const s = await sessionFor(server);
    for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
      const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: `${scheme} ${s.accessToken}` } });
      expect(res.statusCode).toBe(200);
    }
    // One or more spaces before the token (RFC 6750 §2.1: "Bearer" 1*SP b64token), and nothing else.
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: `Bearer  ${s.accessToken}` } })).statusCode).toBe(200);
    for (const bad of [`Bearer\t${s.accessToken}`, `Bearer${s.accessToken}`, `Bearer ${s.accessToken} x`]) {
      expect((await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: bad } })).json().code, bad).toBe('invalid_token');
    }
  });

  it('refuses a malformed Authorization header with invalid_token', async () => {
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: 'Basic abc' } });
    expect(res.json().code).toBe('invalid_token');
  });

  it('applies a role change to the very next request of an existing token', async () => {
    const s = await sessionFor(server);
    await server.services.accounts.setRole(s.account.wallet, 'auditor', 'test');
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: s.headers });
    expect(res.json().role).toBe('auditor');
  });

  it('refuses both credentials at once', async () => {
    const s = await sessionFor(server);
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { ...s.headers, 'x-api-key': 'md_test_x' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('validation_failed');
  });
});
