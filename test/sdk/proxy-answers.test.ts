import { afterEach, describe, expect, it } from 'vitest';
import { MoondraftClient, MoondraftError } from '@moondraft/client';
import { sendJson, sendProblem, startWireServer, type WireHandler, type WireServer } from '../../packages/client/test/support/wire-server.js';

/**
 * What a reverse proxy or load balancer in front of the server may answer instead of the server:
 * a small local HTTP server stands in for it. Every call must end in a typed MoondraftError.
 */
let server: WireServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Answers /api/v1/time itself; every other request goes to `handler`. */
async function serve(handler: WireHandler): Promise<WireServer> {
  server = await startWireServer((req, res) => {
    if (req.target === '/api/v1/time') return sendJson(res, 200, { serverTime: Date.now() }, { serverTime: Date.now() });
    return handler(req, res);
  });
  return server;
}

function clientFor(s: WireServer, extra: Partial<ConstructorParameters<typeof MoondraftClient>[0]> = {}) {
  return new MoondraftClient({
    baseUrl: s.url,
    env: false,
    apiKey: 'md_test_proxy',
    apiSecret: 'mds_proxy_secret',
    sleep: async () => {},
    timeoutMs: 2000,
    ...extra,
  });
}

async function failure(promise: Promise<unknown>): Promise<MoondraftError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(MoondraftError);
  return error as MoondraftError;
}

describe('a 2xx whose body is not the object the method answers', () => {
  it('an empty 200 (or JSON null, a string) is unexpected_response with the request id, never undefined handed to the caller', async () => {
    const bodies = ['', 'null', '"ok"', '[]'];
    let i = 0;
    const s = await serve((_req, res) => void res.writeHead(200, { 'Content-Type': 'application/json', 'X-Request-Id': `lb_${i}` }).end(bodies[i++]));
    const client = clientFor(s);
    for (let n = 0; n < bodies.length; n++) {
      const error = await failure(client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '1' }));
      expect(error.code).toBe('unexpected_response');
      expect(error.status).toBe(200);
      expect(error.requestId).toBe(`lb_${n}`);
      // The order may have been taken: the error names the id to ask again with.
      expect(error.clientOrderId).toMatch(/^[0-9a-f-]{36}$/);
      expect(error.attempts).toBe(1);
    }
    // One placement per answer: a 200 is never sent again.
    expect(s.requests.filter((r) => r.target === '/api/v1/trading/orders')).toHaveLength(bodies.length);
  });

  it('an empty 200 from /auth/refresh or /time is a MoondraftError, not a TypeError', async () => {
    const s = await startWireServer((_req, res) => void res.writeHead(200, { 'X-Request-Id': 'lb_x' }).end());
    server = s;
    const client = clientFor(s, { apiKey: undefined, apiSecret: undefined, session: { accessToken: 'a', refreshToken: 'r', expiresAt: Date.now() + 3_600_000 } });
    expect((await failure(client.syncTime(1))).code).toBe('unexpected_response');
    expect((await failure(client.system.time())).code).toBe('unexpected_response');
    const refresh = await failure(client.auth.refresh());
    expect(refresh.code).toBe('unexpected_response');
    expect(refresh.requestId).toBe('lb_x');
  });

  it('routes without an answer still take a 204 or an empty 200', async () => {
    const s = await serve((req, res) => void (req.method === 'DELETE' ? res.writeHead(204).end() : res.writeHead(200).end()));
    const client = clientFor(s, { session: { accessToken: 'a', refreshToken: 'r', expiresAt: Date.now() + 3_600_000 } });
    await expect(client.withdrawals.removeAddress('a1')).resolves.toBeUndefined();
    await expect(client.sessions.revoke('s1')).resolves.toBeUndefined();
    await expect(client.auth.logout()).resolves.toBeUndefined();
    await expect(client.request('POST', '/api/v1/admin/anything', { body: {} })).resolves.toBeUndefined();
  });
});

describe.each(['fetch', 'node'] as const)('a response body too large to read (%s transport)', (transport) => {
  it('an endless 200 body is read no further than maxResponseBytes: unexpected_response at once, not sent again, the connection closed', async () => {
    let closed = false;
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Request-Id': 'lb_big' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (!closed && res.write(chunk));
        if (!closed) res.once('drain', pump);
      };
      res.on('close', () => void (closed = true));
      pump();
    });
    const client = clientFor(s, { transport, maxResponseBytes: 1024 * 1024, timeoutMs: 10_000 });
    const started = Date.now();
    const error = await failure(client.market.markets());
    expect(error.code).toBe('unexpected_response');
    expect(error.status).toBe(200);
    expect(error.requestId).toBe('lb_big');
    expect(error.detail).toMatch(/maxResponseBytes/);
    expect(error.attempts).toBe(1);
    // Well before the 10 s timeout: the client stopped reading, it did not wait for an end.
    expect(Date.now() - started).toBeLessThan(5000);
    await expect.poll(() => closed).toBe(true);
    client.close();
  });

  it('a 502 that declares a body over the limit is not read, and is retried like any 5xx of an idempotent call', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(502, { 'Content-Type': 'text/html', 'Content-Length': String(10 * 1024 ** 3), 'X-Request-Id': 'lb_502' });
      res.write('<html>');
    });
    const client = clientFor(s, { transport, maxResponseBytes: 1024 * 1024, timeoutMs: 10_000, retry: { maxRetries: 1 } });
    const started = Date.now();
    const error = await failure(client.market.markets());
    expect(error.code).toBe('unexpected_response');
    expect(error.status).toBe(502);
    expect(error.requestId).toBe('lb_502');
    expect(error.detail).toMatch(/maxResponseBytes/);
    expect(error.attempts).toBe(2);
    expect(Date.now() - started).toBeLessThan(5000);
    client.close();
  });

  it('refuses a maxResponseBytes that is no whole number of bytes', () => {
    for (const maxResponseBytes of [0, -1, 1.5, Number.NaN, Infinity]) {
      expect(() => new MoondraftClient({ env: false, transport, maxResponseBytes })).toThrow(TypeError);
    }
  });
});

describe('a 429 from a proxy (no problem body)', () => {
  it('is rate_limited once the retries run out, with its status, Retry-After and request id', async () => {
    let n = 0;
    const s = await serve((_req, res) => void res.writeHead(429, { 'Content-Type': 'text/html', 'Retry-After': '2', 'X-Request-Id': `lb_429_${++n}` }).end('<html>Too Many Requests</html>'));
    const client = clientFor(s, { retry: { maxRetries: 1 } });
    const error = await failure(client.market.markets());
    expect(error.code).toBe('rate_limited');
    expect(error.status).toBe(429);
    expect(error.retryAfterMs).toBe(2000);
    expect(error.requestId).toBe('lb_429_2');
    expect(error.problem).toBeUndefined();
    expect(error.attempts).toBe(2);
  });

  it('is rate_limited when its Retry-After is too long to wait, and even without a Retry-After', async () => {
    const answers: Array<Record<string, string>> = [{ 'Retry-After': '3600' }, {}];
    let n = 0;
    const s = await serve((_req, res) => void res.writeHead(429, { 'Content-Type': 'text/plain', 'X-Request-Id': `lb_${n}`, ...answers[n++] }).end('slow down'));
    const suspended = await failure(clientFor(s).market.markets());
    expect(suspended).toMatchObject({ code: 'rate_limited', status: 429, retryAfterMs: 3_600_000, requestId: 'lb_0', attempts: 1 });
    const bare = await failure(clientFor(s, { retry: { maxRetries: 0 } }).market.markets());
    expect(bare).toMatchObject({ code: 'rate_limited', status: 429, retryAfterMs: undefined, requestId: 'lb_1', attempts: 1 });
  });
});

describe.each(['fetch', 'node'] as const)('a connection lost after the response headers arrived (%s transport)', (transport) => {
  it('a reset mid-body is network_error with the status and request id received', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Request-Id': 'lb_reset' });
      res.write('{"markets": [');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const client = clientFor(s, { transport, retry: { maxRetries: 0 } });
    const error = await failure(client.market.markets());
    expect(error.code).toBe('network_error');
    expect(error.status).toBe(200);
    expect(error.requestId).toBe('lb_reset');
    expect(error.message).toContain('lb_reset');
    client.close();
  });

  it('a body that never ends is a timeout with the status and request id received', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(503, { 'Content-Type': 'text/html', 'X-Request-Id': 'lb_slow' });
      res.write('<html>');
    });
    const client = clientFor(s, { transport, timeoutMs: 300, retry: { maxRetries: 0 } });
    const error = await failure(client.market.markets());
    expect(error.code).toBe('timeout');
    expect(error.status).toBe(503);
    expect(error.requestId).toBe('lb_slow');
    client.close();
  });

  it('a failure before any response still has status 0 and no request id', async () => {
    const s = await serve((_req, res) => void res.socket?.destroy());
    const client = clientFor(s, { transport, retry: { maxRetries: 0 } });
    const error = await failure(client.market.markets());
    expect(error).toMatchObject({ code: 'network_error', status: 0, requestId: undefined });
    client.close();
  });
});

describe('a 401 on /auth/refresh that is not the server refusing the token', () => {
  const session = () => ({ accessToken: 'a', refreshToken: 'rt_keep', expiresAt: Date.now() + 3_600_000 });

  it('a proxy 401 without a problem body is an error, and the session keeps its refresh token for a later refresh', async () => {
    const s = await startWireServer((_req, res) => void res.writeHead(401, { 'Content-Type': 'text/html', 'X-Request-Id': 'lb_401' }).end('<html>401 Authorization Required</html>'));
    server = s;
    const changes: unknown[] = [];
    const client = clientFor(s, { apiKey: undefined, apiSecret: undefined, session: session(), onSessionChange: (c) => void changes.push(c) });
    const error = await failure(client.auth.refresh());
    expect(error).toMatchObject({ code: 'unexpected_response', status: 401, requestId: 'lb_401' });
    expect(client.session).toMatchObject({ accessToken: 'a', refreshToken: 'rt_keep' });
    expect(changes.at(-1)).toMatchObject({ refreshToken: 'rt_keep' });
  });

  it('a 401 whose JSON names no token refusal keeps the token too; the server refusing the token ends the session', async () => {
    const answers = [
      () => ({ code: 'Unauthorized', message: 'gateway says no' }),
      () => ({ type: 'https://moondraft.dev/problems/invalid_token', title: 'Invalid token', status: 401, detail: 'unknown refresh token', code: 'invalid_token', requestId: 'req_1' }),
    ];
    let n = 0;
    const s = await startWireServer((_req, res) => void res.writeHead(401, { 'Content-Type': n === 0 ? 'application/json' : 'application/problem+json' }).end(JSON.stringify(answers[n++]!())));
    server = s;
    const client = clientFor(s, { apiKey: undefined, apiSecret: undefined, session: session() });
    expect(await failure(client.auth.refresh())).toMatchObject({ code: 'unexpected_response', status: 401, problem: undefined });
    expect(client.session).toMatchObject({ refreshToken: 'rt_keep' });
    expect((await failure(client.auth.refresh())).code).toBe('invalid_token');
    expect(client.session).toBeNull();
    expect(s.requests.map((r) => JSON.parse(r.body.toString()).refreshToken)).toEqual(['rt_keep', 'rt_keep']);
  });
});

/**
 * A JSON body naming a server code is the server's problem only as application/problem+json with the
 * members the server always sends (type, status, code, requestId). A proxy's or misrouted upstream's
 * plain JSON that happens to say `{"code":"invalid_token"}` must not end a session, spend a refresh
 * token, stop retries or move the clock: it is an unexpected_response with its status.
 */
describe('JSON naming a server code that is not the server\'s problem+json', () => {
  const session = () => ({ accessToken: 'a', refreshToken: 'rt_keep', expiresAt: Date.now() + 3_600_000 });
  const shaped = (code: string, status: number) => ({ type: `https://moondraft.dev/problems/${code}`, title: 't', status, detail: 'd', code, requestId: 'req_x' });

  it.each(['invalid_token', 'token_revoked', 'refresh_token_reused', 'token_expired'])(
    'a 401 application/json {code: %s} on /auth/refresh keeps the session and its refresh token',
    async (code) => {
      let n = 0;
      const s = await startWireServer((_req, res) => {
        // Bare, then shaped like a problem but sent as application/json, then problem+json missing requestId.
        const bodies = [{ code }, shaped(code, 401), { ...shaped(code, 401), requestId: undefined }];
        const type = n < 2 ? 'application/json' : 'application/problem+json';
        res.writeHead(401, { 'Content-Type': type, 'X-Request-Id': `lb_${n}` }).end(JSON.stringify(bodies[n++]));
      });
      server = s;
      const client = clientFor(s, { apiKey: undefined, apiSecret: undefined, session: session() });
      for (let i = 0; i < 3; i++) {
        expect(await failure(client.auth.refresh())).toMatchObject({ code: 'unexpected_response', status: 401, requestId: `lb_${i}`, problem: undefined });
        expect(client.session).toMatchObject({ accessToken: 'a', refreshToken: 'rt_keep' });
      }
    },
  );

  it('logout answered by a proxy JSON {code: token_revoked} is an error, and the session is kept', async () => {
    const s = await startWireServer((_req, res) => void res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ code: 'token_revoked' })));
    server = s;
    const client = clientFor(s, { apiKey: undefined, apiSecret: undefined, session: session() });
    expect(await failure(client.auth.logout())).toMatchObject({ code: 'unexpected_response', status: 401 });
    expect(client.session).toMatchObject({ refreshToken: 'rt_keep' });
  });

  it('a 401 application/json {code: token_expired} on a bearer call does not refresh the session', async () => {
    const s = await startWireServer((_req, res) => void res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify(shaped('token_expired', 401))));
    server = s;
    const client = clientFor(s, { apiKey: undefined, apiSecret: undefined, session: session() });
    expect(await failure(client.account.get())).toMatchObject({ code: 'unexpected_response', status: 401, attempts: 1 });
    expect(s.requests.map((r) => r.target)).toEqual(['/api/v1/account']);
    expect(client.session).toMatchObject({ refreshToken: 'rt_keep' });
  });

  it('a 503 application/json {code: trading_halted} is retried as any 5xx without a problem body', async () => {
    const s = await serve((_req, res) => void res.writeHead(503, { 'Content-Type': 'application/json' }).end(JSON.stringify(shaped('trading_halted', 503))));
    const error = await failure(clientFor(s, { retry: { maxRetries: 2 } }).market.markets());
    expect(error).toMatchObject({ code: 'unexpected_response', status: 503, attempts: 3 });
  });

  it('the server\'s own 503 trading_halted (problem+json) is still not retried', async () => {
    const s = await serve((_req, res) => sendProblem(res, 503, 'trading_halted', 'halted'));
    expect(await failure(clientFor(s, { retry: { maxRetries: 2 } }).market.markets())).toMatchObject({ code: 'trading_halted', status: 503, attempts: 1 });
  });

  it('application/json timestamp_out_of_window or replayed_request is not retried, and moves no clock', async () => {
    const serverTime = Date.now() + 3_600_000;
    let n = 0;
    const s = await serve((_req, res) => {
      const code = n++ === 0 ? 'timestamp_out_of_window' : 'replayed_request';
      res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ ...shaped(code, 401), serverTime }));
    });
    const client = clientFor(s);
    await client.syncTime(1);
    expect(client.clockOffsetMs).toBeDefined();
    expect(await failure(client.account.balances())).toMatchObject({ code: 'unexpected_response', status: 401, attempts: 1 });
    expect(await failure(client.account.balances())).toMatchObject({ code: 'unexpected_response', status: 401, attempts: 1 });
    expect(s.requests.filter((r) => r.target === '/api/v1/account/balances')).toHaveLength(2);
    // The estimate from the real server's time is kept (not dropped as proven wrong, nor an hour ahead).
    expect(Math.abs(client.clockOffsetMs!)).toBeLessThan(60_000);
  });

  it('the server\'s problem+json with a charset parameter is still its problem', async () => {
    const s = await serve((_req, res) =>
      void res.writeHead(403, { 'Content-Type': 'Application/Problem+JSON; charset=utf-8' }).end(JSON.stringify(shaped('insufficient_scope', 403))),
    );
    for (const transport of ['fetch', 'node'] as const) {
      const client = clientFor(s, { transport });
      expect(await failure(client.account.balances())).toMatchObject({ code: 'insufficient_scope', status: 403, requestId: 'req_x' });
      client.close();
    }
  });
});
