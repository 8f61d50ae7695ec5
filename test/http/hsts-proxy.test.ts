import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * api-security.txt: "HSTS Enforcement". With TLS in the server, test/process/cli.test.ts checks it;
 * a server behind a trusted TLS-terminating proxy (live's other way to start) sends HSTS only on
 * answers to requests that proxy says came over HTTPS, and never on the word of another peer.
 */
describe('HSTS behind a trusted reverse proxy', () => {
  let server: TestServer;
  const PROXY = '10.0.0.5';
  beforeAll(async () => {
    server = await startTestServer({ env: { MOONDRAFT_TRUSTED_PROXIES: PROXY } });
  });
  afterAll(() => server.close());

  const get = (remoteAddress: string, proto?: string) =>
    server.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress, headers: { 'x-forwarded-for': '203.0.113.8', ...(proto ? { 'x-forwarded-proto': proto } : {}) } });

  it('sends HSTS when the trusted proxy says the client used HTTPS', async () => {
    const res = await get(PROXY, 'https');
    expect(res.statusCode).toBe(200);
    expect(res.headers['strict-transport-security']).toBe('max-age=63072000; includeSubDomains');
  });

  it('sends none over plain HTTP (RFC 6797 §7.2), or when the proxy names no protocol', async () => {
    expect((await get(PROXY, 'http')).headers['strict-transport-security']).toBeUndefined();
    expect((await get(PROXY)).headers['strict-transport-security']).toBeUndefined();
  });

  it('never takes another peer’s word for HTTPS', async () => {
    const res = await get('198.51.100.9', 'https');
    expect(res.statusCode).toBe(200);
    expect(res.headers['strict-transport-security']).toBeUndefined();
  });

  it('refusals carry it too (a 404 and a 401 from the trusted proxy over HTTPS)', async () => {
    const notFound = await server.app.inject({ method: 'GET', url: '/api/v1/nope', remoteAddress: PROXY, headers: { 'x-forwarded-proto': 'https' } });
    expect(notFound.statusCode).toBe(404);
    expect(notFound.headers['strict-transport-security']).toBeDefined();
    const unauth = await server.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: PROXY, headers: { 'x-forwarded-proto': 'https' } });
    expect(unauth.statusCode).toBe(401);
    expect(unauth.headers['strict-transport-security']).toBeDefined();
  });
});
