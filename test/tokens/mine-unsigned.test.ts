import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { hmacSignatureHex } from '../../src/security/signing/index.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * Token listings are market data, readable with a bare X-API-Key; `mine=true` is not: it lists the
 * tokens the key's owner launched, account data that whoever saw the key id (a log, a screenshot)
 * must not read without the secret.
 */
describe('GET /api/v1/tokens?mine=true with an API key', () => {
  let server: TestServer;
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  it('needs a signed request; the public listing still works unsigned', async () => {
    const owner = await sessionFor(server, { role: 'trader' });
    const launched = await server.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: owner.headers, payload: { name: 'Mine', symbol: 'MINEX', decimals: 6, supply: '1000' } });
    expect(launched.statusCode, launched.body).toBe(201);
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'reader', scopes: ['market:read'] } });
    const key = { apiKey: created.json().apiKey as string, secret: created.json().apiSecret as string };

    const bare = await server.app.inject({ method: 'GET', url: '/api/v1/tokens?mine=true', remoteAddress: '203.0.113.7', headers: { 'x-api-key': key.apiKey } });
    expect(bare.statusCode, bare.body).toBe(401);
    expect(bare.json().code).toBe('signature_required');
    expect(bare.body).not.toContain('MINEX');

    // The public list (every token, nobody's in particular) stays market data.
    const list = await server.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { 'x-api-key': key.apiKey } });
    expect(list.statusCode, list.body).toBe(200);

    // The owner, signing, reads their own.
    clock.advance(1);
    const timestamp = String(clock.now());
    const url = '/api/v1/tokens?mine=true';
    const signature = hmacSignatureHex(key.secret, { timestamp, method: 'GET', pathWithQuery: url, body: '' });
    const signed = await server.app.inject({ method: 'GET', url, headers: { 'x-api-key': key.apiKey, 'x-api-timestamp': timestamp, 'x-api-signature': signature } });
    expect(signed.statusCode, signed.body).toBe(200);
    expect(signed.json().tokens.map((t: { symbol: string }) => t.symbol)).toEqual(['MINEX']);
  });
});
