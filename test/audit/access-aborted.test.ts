import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

describe('access events of requests whose client went away', () => {
  let server: TestServer;
  let port: number;
  beforeAll(async () => {
    server = await startTestServer({ env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000' } });
    port = Number(new URL(await server.app.listen({ host: '127.0.0.1', port: 0 })).port);
  });
  afterAll(() => server.close());

  it('records a request the client abandoned before its answer (the faucet still credited it)', async () => {
    const s = await sessionFor(server);
    // A slow commit: the client gives up while the credit is being written.
    const faucet = server.services.trading.faucet;
    const grant = faucet.grant.bind(faucet);
    const spy = vi.spyOn(faucet, 'grant').mockImplementation(async (...args) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return grant(...args);
    });
    try {
      const body = JSON.stringify({ asset: 'USDC', amount: '10' });
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/sandbox/faucet', headers: { ...s.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
      req.on('error', () => {});
      req.end(body);
      await new Promise((resolve) => setTimeout(resolve, 100));
      req.destroy();
      await vi.waitFor(async () => expect((await server.services.audit.list({ type: 'trading.faucet', accountId: s.account.id }, { limit: 10 })).records).toHaveLength(1), { timeout: 3000 });
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      spy.mockRestore();
    }
    await server.services.audit.settle();
    const access = (await server.services.audit.list({ type: 'access.request', accountId: s.account.id }, { limit: 10 })).records;
    // Once, with the answer it was given, however the response ended.
    expect(access.filter((r) => r.details?.route === '/api/v1/sandbox/faucet')).toMatchObject([{ details: { status: 200 } }]);
    // An answered request over the same path is still recorded once.
    const before = access.length;
    const answered = await fetch(`http://127.0.0.1:${port}/api/v1/account`, { headers: s.headers });
    expect(answered.status).toBe(200);
    await answered.text();
    await server.services.audit.settle();
    expect((await server.services.audit.list({ type: 'access.request', accountId: s.account.id }, { limit: 10 })).records).toHaveLength(before + 1);
  });
});
