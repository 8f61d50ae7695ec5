import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

describe('flood refusals counted in the audit trail', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000' } });
  });
  afterAll(() => server.close());

  it('counts only API requests, as access events do: a blocked address probing /health or /docs is not an API request', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '198.51.100.9' } })).statusCode).toBe(201);
    for (const url of ['/health', '/docs/json', '/api/v1/time', '/api/v1/nowhere']) {
      expect((await server.app.inject({ method: 'GET', url, remoteAddress: '198.51.100.9' })).statusCode).toBe(403);
    }
    await server.services.audit.settle();
    const refused = [];
    for await (const v of server.services.audit.export({ type: 'access.refused' })) refused.push(v);
    expect(refused.map((v) => [v.ip, v.details?.count])).toEqual([['198.51.100.0/24', 2]]);
  });
});
