import { createHash, randomBytes } from 'node:crypto';
import { generate } from 'selfsigned';
import { afterEach, describe, expect, it } from 'vitest';
import { MoondraftClient, spkiPin } from '../src/index.js';
import { recordingSleep, sendJson, sendProblem, startWireServer, type WireServer } from './support/wire-server.js';

const servers: WireServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
async function wire(...args: Parameters<typeof startWireServer>) {
  const s = await startWireServer(...args);
  servers.push(s);
  return s;
}

describe('request() escape hatch', () => {
  it('never sends credentials to a host other than baseUrl (path "//host/…")', async () => {
    const api = await wire((_req, res) => sendJson(res, 200, {}, { serverTime: Date.now() }));
    const evil = await wire((_req, res) => sendJson(res, 200, { stolen: true }, { serverTime: Date.now() }));
    const client = new MoondraftClient({
      baseUrl: api.url,
      env: false,
      session: { accessToken: 'at.SECRET-ACCESS-TOKEN', refreshToken: 'rt_secret', expiresAt: Date.now() + 3_600_000 },
    });
    // Paths that a URL parser reads as another host are refused before anything is sent.
    expect(() => client.request('GET', `//127.0.0.1:${evil.port}/api/v1/admin/x`)).toThrow(TypeError);
    expect(() => client.request('GET', `/\\127.0.0.1:${evil.port}/api/v1/admin/y`)).toThrow(TypeError);
    await client.request('GET', '/api/v1/time');
    expect(api.requests).toHaveLength(1);
    expect(evil.requests.map((r) => r.headers.authorization)).toEqual([]);
  });
});

describe('request() query', () => {
  it('sends a URLSearchParams query instead of dropping it, and refuses other non-plain objects', async () => {
    const api = await wire((req, res) => sendJson(res, 200, { cancelled: [], count: 0, target: req.target }, { serverTime: Date.now() }));
    const client = new MoondraftClient({ baseUrl: api.url, env: false, apiKey: 'md_test_query', apiSecret: 'secret' });
    // Dropping the query here would cancel the orders of every market, not of MOON-USDC only.
    await client.request('DELETE', '/api/v1/trading/orders', { query: new URLSearchParams({ market: 'MOON-USDC' }) });
    expect(api.requests.map((r) => r.target).filter((t) => t !== '/api/v1/time')).toEqual(['/api/v1/trading/orders?market=MOON-USDC']);
    await expect(client.request('DELETE', '/api/v1/trading/orders', { query: new Map([['market', 'MOON-USDC']]) })).rejects.toThrow(TypeError);
    expect(api.requests.filter((r) => r.target !== '/api/v1/time')).toHaveLength(1);
  });
});

describe('request() method', () => {
  it('sends the method it signed, whatever its case, and refuses one the API does not use', async () => {
    const api = await wire((req, res) => sendJson(res, 200, { method: req.method }, { serverTime: Date.now() }));
    const client = new MoondraftClient({ baseUrl: api.url, env: false, apiKey: 'md_test_method', apiSecret: 'secret' });
    // From JavaScript the type does not stop a lower-case method: fetch sends 'patch' as it is
    // (it upper-cases only a few methods), so the server would see another method than was signed.
    await client.request('patch' as 'PATCH', '/api/v1/keys/key_1', { body: { label: 'x' } });
    await client.request('get' as 'GET', '/api/v1/account');
    const sent = api.requests.filter((r) => r.target !== '/api/v1/time');
    expect(sent.map((r) => r.method)).toEqual(['PATCH', 'GET']);
    expect(() => client.request('TRACE' as 'GET', '/api/v1/account')).toThrow(TypeError);
    expect(api.requests.filter((r) => r.target !== '/api/v1/time')).toHaveLength(2);
  });
});

describe('request() body', () => {
  it('refuses a body on GET before sending anything, rather than report a fetch refusal as a network failure', async () => {
    const api = await wire((_req, res) => sendJson(res, 200, { ok: true }, { serverTime: Date.now() }));
    const { sleep, delays } = recordingSleep();
    const client = new MoondraftClient({ baseUrl: api.url, env: false, apiKey: 'md_test_getbody', apiSecret: 'secret', sleep });
    // fetch refuses a GET with a body (TypeError); that was classified network_error and retried 3 times.
    expect(() => client.request('GET', '/api/v1/account', { body: { x: 1 } })).toThrow(TypeError);
    expect(delays).toEqual([]);
    expect(api.requests).toHaveLength(0);
    // DELETE may carry one.
    await expect(client.request('DELETE', '/api/v1/x', { body: { x: 1 } })).resolves.toEqual({ ok: true });
  });
});

describe('Retry-After as an HTTP date', () => {
  it('measures an HTTP-date Retry-After against the server clock it has estimated, not the skewed local clock', async () => {
    const SKEW = 60_000; // local clock one minute behind the server
    let n = 0;
    const s = await wire((req, res) => {
      const serverNow = Date.now();
      if (req.target === '/api/v1/time') return sendJson(res, 200, { serverTime: serverNow }, { serverTime: serverNow });
      if (++n === 1) {
        return sendProblem(res, 429, 'rate_limited', 'Too many requests', {
          serverTime: serverNow,
          headers: { 'Retry-After': new Date(serverNow + 2000).toUTCString(), Date: new Date(serverNow).toUTCString() },
        });
      }
      sendJson(res, 200, { tickers: [] }, { serverTime: serverNow });
    });
    const { sleep, delays } = recordingSleep();
    const client = new MoondraftClient({
      baseUrl: s.url,
      env: false,
      apiKey: 'md_test_review4_ra',
      apiSecret: 'secret',
      clock: { now: () => Date.now() - SKEW },
      sleep,
      random: () => 0,
    });
    await client.syncTime(1);
    expect(Math.abs((client.clockOffsetMs ?? 0) - SKEW)).toBeLessThan(200);
    // The server asked for ~2 s; a 61-62 s wait (> maxRetryAfterMs) makes the SDK give up at once.
    await expect(client.market.tickers()).resolves.toBeDefined();
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeLessThanOrEqual(3000);
  });
});

describe('pinning when TLS verification is disabled process-wide', () => {
  it('still refuses a trusted certificate that matches no pin when NODE_TLS_REJECT_UNAUTHORIZED=0', async () => {
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notAfterDate: new Date(Date.now() + 86400_000),
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    });
    const s = await wire((_req, res) => sendJson(res, 200, { serverTime: Date.now() }, { serverTime: Date.now() }), { key: pems.private, cert: pems.cert });
    const wrongPin = createHash('sha256').update(randomBytes(32)).digest('base64');
    expect(wrongPin).not.toBe(spkiPin(pems.cert));
    const before = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    try {
      const client = new MoondraftClient({ baseUrl: s.url, env: false, tls: { ca: pems.cert, pins: [wrongPin] }, retry: { maxRetries: 0 } });
      const outcome = await client.system.time().then(
        () => 'request went through to an unpinned server',
        (e: { code?: string }) => e.code,
      );
      client.close();
      expect(outcome).toBe('certificate_pin_mismatch');
      expect(s.requests).toHaveLength(0);
    } finally {
      if (before === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = before;
    }
  });
});

describe('credentials', () => {
  const env = { MOONDRAFT_API_KEY: 'md_test_env', MOONDRAFT_API_SECRET: 'env-secret' };
  const privateKey = randomBytes(32).toString('hex');

  it('come from code or from the environment, never a mix', () => {
    // A full set in code wins, and no environment secret conflicts with it.
    const client = new MoondraftClient({ baseUrl: 'http://127.0.0.1:1', env, apiKey: 'md_test_code', privateKey });
    expect([client.apiKey, client.credentialKind]).toEqual(['md_test_code', 'ed25519']);
    // A secret or private key in code is never paired with the environment's key.
    expect(() => new MoondraftClient({ baseUrl: 'http://127.0.0.1:1', env, privateKey })).toThrow(/without its apiKey/);
    expect(() => new MoondraftClient({ baseUrl: 'http://127.0.0.1:1', env, apiSecret: 'code-secret' })).toThrow(/without its apiKey/);
    // Nothing in code: the environment's pair.
    const fromEnv = new MoondraftClient({ baseUrl: 'http://127.0.0.1:1', env });
    expect([fromEnv.apiKey, fromEnv.credentialKind]).toEqual(['md_test_env', 'hmac']);
  });
});

describe('configuration errors', () => {
  it('a malformed baseUrl is refused without echoing it (it may hold a password)', () => {
    const secret = 'hunter2-s3cr3t';
    let message = '';
    try {
      new MoondraftClient({ baseUrl: `https://admin:${secret}@exa mple.com`, env: false });
    } catch (err) {
      message = String((err as Error).message);
    }
    expect(message).toBe('baseUrl is not a URL');
    expect(message).not.toContain(secret);
  });
});
