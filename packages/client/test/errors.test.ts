import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MoondraftClient, MoondraftError, isMoondraftError, type ResponseEvent } from '../src/index.js';
import { sendJson, sendProblem, startWireServer, type WireServer } from './support/wire-server.js';

const SECRET = 'mds_errors_secret';
let server: WireServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const client = (s: WireServer, extra: Partial<ConstructorParameters<typeof MoondraftClient>[0]> = {}) =>
  new MoondraftClient({ baseUrl: s.url, env: false, apiKey: 'md_test_e', apiSecret: SECRET, autoSyncTime: false, retry: { maxRetries: 0 }, ...extra });

describe('error mapping', () => {
  it('carries the problem code, status, requestId, detail, title and type', async () => {
    server = await startWireServer((_req, res) => sendProblem(res, 403, 'insufficient_scope', 'The key lacks orders:write'));
    const error = await client(server).trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MoondraftError);
    expect(error).toBeInstanceOf(Error);
    const e = error as MoondraftError;
    expect(e).toMatchObject({
      name: 'MoondraftError',
      code: 'insufficient_scope',
      status: 403,
      detail: 'The key lacks orders:write',
      title: 'title of insufficient_scope',
      type: 'https://moondraft.dev/problems/insufficient_scope',
      method: 'POST',
      path: '/api/v1/trading/orders',
      attempts: 1,
    });
    expect(e.requestId).toMatch(/^req_test_\d+$/);
    expect(e.problem?.code).toBe('insufficient_scope');
    expect(e.message).toContain('insufficient_scope');
    expect(e.message).toContain(e.requestId!);
    expect(isMoondraftError(e, 'insufficient_scope')).toBe(true);
    expect(isMoondraftError(e, 'not_found')).toBe(false);
    expect(isMoondraftError(new Error('x'))).toBe(false);
  });

  it('on invalid_signature, sets the server view beside what the client signed and names the difference', async () => {
    server = await startWireServer((req, res) => {
      // The server saw another path (e.g. a proxy rewrote it) and says so, as the contract requires.
      sendProblem(res, 401, 'invalid_signature', 'The signature does not match', {
        extra: {
          signed: {
            timestamp: req.headers['x-api-timestamp'],
            method: req.method,
            path: `/prefix${req.target}`,
            bodyLength: req.body.length,
            bodySha256: createHash('sha256').update(req.body).digest('hex'),
          },
        },
      });
    });
    const e = (await client(server).account.balances().catch((x: unknown) => x)) as MoondraftError;
    expect(e.code).toBe('invalid_signature');
    expect(e.signed).toMatchObject({ method: 'GET', path: '/prefix/api/v1/account/balances', bodyLength: 0 });
    expect(e.sent).toMatchObject({ method: 'GET', path: '/api/v1/account/balances', bodyLength: 0, timestamp: e.signed!.timestamp, bodySha256: e.signed!.bodySha256 });
    expect(e.message).toContain('path: server "/prefix/api/v1/account/balances", client "/api/v1/account/balances"');
    expect(e.message).not.toContain(SECRET);
    expect(JSON.stringify(e.sent)).not.toContain(SECRET);
  });

  it('maps an answer that is not a problem to unexpected_response, and does not follow redirects', async () => {
    server = await startWireServer((req, res) => {
      if (req.target === '/api/v1/tokens') return void res.writeHead(302, { Location: 'https://elsewhere.example/api/v1/tokens' }).end();
      if (req.target === '/api/v1/account') return void res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>hello</html>');
      res.writeHead(502, { 'Content-Type': 'text/html' }).end('<html>Bad gateway</html>');
    });
    const c = client(server);
    await expect(c.tokens.list()).rejects.toMatchObject({ code: 'unexpected_response', status: 302, detail: expect.stringContaining('elsewhere.example') });
    await expect(c.account.get()).rejects.toMatchObject({ code: 'unexpected_response', status: 200 });
    await expect(c.market.markets()).rejects.toMatchObject({ code: 'unexpected_response', status: 502 });
    expect(server.requests.map((r) => r.target)).toEqual(['/api/v1/tokens', '/api/v1/account', '/api/v1/market/markets']);
  });

  it('maps a 2xx whose body lacks the list a method returns to unexpected_response, with the request id', async () => {
    // A gateway answering 200 with its own body: list methods destructured it and threw a bare
    // TypeError (null, empty body) or returned undefined as the list ({}).
    const bodies = ['null', '', '{}', '{"markets":"none"}', '[]'];
    let n = 0;
    server = await startWireServer((_req, res) => void res.writeHead(200, { 'Content-Type': 'application/json', 'X-Request-Id': `req_gw_${n}` }).end(bodies[n++]));
    const c = client(server);
    for (let i = 0; i < bodies.length; i++) {
      const error = await c.market.markets().then(
        (value: unknown) => ({ resolved: value }),
        (e: unknown) => e,
      );
      expect(error, `body ${JSON.stringify(bodies[i])}`).toBeInstanceOf(MoondraftError);
      expect(error).toMatchObject({ code: 'unexpected_response', status: 200, requestId: `req_gw_${i}` });
    }
  });

  it('carries the HTTP status, not a status the body claims', async () => {
    // A problem body whose status disagrees with the response's (a proxy rewrote one of them): the
    // SDK decided on the HTTP status (no retry of a 400), so the error must say the same.
    server = await startWireServer(
      (_req, res) =>
        void res
          .writeHead(400, { 'Content-Type': 'application/problem+json' })
          .end(JSON.stringify({ type: 'about:blank', title: 'x', status: 503, detail: 'rewritten', code: 'validation_failed', requestId: 'req_r' })),
    );
    await expect(client(server).account.get()).rejects.toMatchObject({ code: 'validation_failed', status: 400 });
  });

  it('maps a refused connection to network_error with status 0', async () => {
    const s = await startWireServer(() => {});
    const url = s.url;
    await s.close();
    const c = new MoondraftClient({ baseUrl: url, env: false, retry: { maxRetries: 0 } });
    await expect(c.system.time()).rejects.toMatchObject({ code: 'network_error', status: 0 });
  });

  it('refuses a session-only call without a session before sending anything', async () => {
    server = await startWireServer((_req, res) => sendJson(res, 200, []));
    await expect(client(server).keys.list()).rejects.toMatchObject({ code: 'session_unavailable', status: 0 });
    expect(server.requests).toHaveLength(0);
  });

  it('reports every response (with its rate-limit state) to onResponse', async () => {
    const events: ResponseEvent[] = [];
    server = await startWireServer((_req, res) =>
      sendJson(res, 200, { tickers: [] }, { headers: { 'RateLimit-Policy': '"market";q=100;w=1', RateLimit: '"market";r=99;t=1' } }),
    );
    await client(server, { hooks: { onResponse: (e) => events.push(e) } }).market.tickers();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ method: 'GET', path: '/api/v1/market/tickers', status: 200, attempt: 1 });
    expect(events[0]!.rateLimit).toEqual([{ policy: 'market', quota: 100, windowSeconds: 1, remaining: 99, resetSeconds: 1 }]);
  });

  it('returns undefined for 204 No Content from a route that answers nothing', async () => {
    server = await startWireServer((_req, res) => void res.writeHead(204).end());
    await expect(client(server).withdrawals.removeAddress('adr_1')).resolves.toBeUndefined();
  });

  it('never shows tokens or secrets when a client is logged', async () => {
    const { inspect } = await import('node:util');
    const c = new MoondraftClient({
      env: false,
      apiKey: 'md_test_visible',
      apiSecret: SECRET,
      session: { accessToken: 'header.payload.sig', refreshToken: 'rt_secret', expiresAt: Date.now() + 60_000 },
    });
    const shown = inspect(c, { depth: 10 });
    expect(shown).not.toContain(SECRET);
    expect(shown).not.toContain('rt_secret');
    expect(shown).not.toContain('header.payload.sig');
    expect(shown).toContain('signedIn: true');
  });

  it('never puts an access token in an error, even one that cannot go in a header', async () => {
    const { inspect } = await import('node:util');
    server = await startWireServer((_req, res) => sendJson(res, 200, { id: 'acc_1' }));
    // A session restored from storage with a stray line break inside its token: fetch refuses the
    // header and quotes its value in the message, which would end up in logs.
    const token = 'eyJhbGciOiJSUzI1NiJ9.SECRET-PAYLOAD\n.sig';
    const c = new MoondraftClient({
      baseUrl: server.url,
      env: false,
      retry: { maxRetries: 3 },
      sleep: async () => {},
      session: { accessToken: token, refreshToken: 'rt_secret', expiresAt: Date.now() + 3_600_000 },
    });
    const error = await c.account.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MoondraftError);
    expect(error).toMatchObject({ code: 'session_unavailable', status: 0, attempts: 1 });
    const shown = `${String(error)} ${inspect(error, { depth: 10 })} ${JSON.stringify(error)}`;
    expect(shown).not.toContain('SECRET-PAYLOAD');
    expect(server.requests).toHaveLength(0);
  });
});
