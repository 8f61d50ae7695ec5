import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, type Listening } from '../../src/http/listen.js';
import { rawExchange } from '../support/raw-http.js';
import { startTestServer, type TestServer } from '../support/server.js';

describe('what never became a request is counted in the audit trail', () => {
  let server: TestServer;
  let listening: Listening;
  let port: number;
  beforeAll(async () => {
    server = await startTestServer({ env: { HOST: '127.0.0.1', PORT: '0', MOONDRAFT_AUDIT_FLUSH_MS: '600000' } });
    listening = await listen(server);
    port = Number(new URL(listening.url).port);
  });
  afterAll(() => listening.stop());

  it('malformed HTTP and headers past the limit: one access.refused count per network and refusal, with the status answered', async () => {
    for (let i = 0; i < 3; i++) expect((await rawExchange(port, 'GET /api/v1/time HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n')).text).toMatch(/^HTTP\/1\.1 400 /);
    const big = `GET /api/v1/time HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(20_000)}\r\n\r\n`;
    expect((await rawExchange(port, big)).text).toMatch(/^HTTP\/1\.1 431 /);
    await server.services.audit.settle();
    const refused = [];
    for await (const v of server.services.audit.export({ type: 'access.refused' })) refused.push([v.ip, v.details]);
    expect(refused).toEqual(
      expect.arrayContaining([
        ['127.0.0.0/24', expect.objectContaining({ refusal: 'malformed', status: 400, count: 3 })],
        ['127.0.0.0/24', expect.objectContaining({ refusal: 'headers_too_large', status: 431, count: 1 })],
      ]),
    );
    expect(refused).toHaveLength(2);
  });
});
