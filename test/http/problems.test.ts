import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { Type } from '@sinclair/typebox';
import { loadConfig } from '../../src/config/index.js';
import { ERRORS } from '../../src/errors/registry.js';
import { buildServer } from '../../src/http/server.js';
import { createServices, type Services } from '../../src/services.js';
import { sessionFor } from '../support/auth.js';
import { rawExchange } from '../support/raw-http.js';
import { startTestServer, type TestServer } from '../support/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): any }, code: keyof typeof ERRORS) {
  expect(res.statusCode).toBe(ERRORS[code].status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json();
  expect(body).toMatchObject({ code, status: ERRORS[code].status, title: ERRORS[code].title });
  expect(body.type).toMatch(new RegExp(`/${code}$`));
  expect(body.requestId).toBe(res.headers['x-request-id']);
  expect(JSON.stringify(body)).not.toMatch(/stack|node_modules|\.ts:|SELECT|sqlite/i);
  return body;
}

describe('conventions on every response', () => {
  it('carries X-Request-Id, X-API-Server-Time and security headers', async () => {
    const before = Date.now();
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/time' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toMatch(/^req_[0-9a-f]{32}$/);
    const serverTime = Number(res.headers['x-api-server-time']);
    expect(serverTime).toBeGreaterThanOrEqual(before);
    expect(res.json().serverTime).toBeGreaterThanOrEqual(before);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['strict-transport-security']).toBeUndefined(); // plain HTTP: no HSTS
  });

  it('serves /health when store and state answer', async () => {
    const res = await server.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', store: true, state: true });
  });

  it('/health probes the store and shared state at most once a second, however many ask (an anonymous flood cannot turn it into database load)', async () => {
    const clock = new ManualClock(Date.UTC(2026, 4, 1));
    const other = await startTestServer({ clock });
    try {
      const storePing = vi.spyOn(other.services.store, 'ping');
      const statePing = vi.spyOn(other.services.state, 'ping');
      const burst = await Promise.all(Array.from({ length: 20 }, () => other.app.inject({ method: 'GET', url: '/health' })));
      expect(burst.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
      clock.advance(999);
      expect((await other.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      expect([storePing.mock.calls.length, statePing.mock.calls.length]).toEqual([1, 1]);
      // A second later the answer is probed again, and a store gone since is seen.
      clock.advance(1);
      storePing.mockResolvedValueOnce(false);
      expectProblem(await other.app.inject({ method: 'GET', url: '/health' }), 'service_unavailable');
      expect([storePing.mock.calls.length, statePing.mock.calls.length]).toEqual([2, 2]);
    } finally {
      await other.close();
    }
  });

  it('answers 503 service_unavailable on /health when the store is gone', async () => {
    const other = await startTestServer();
    await other.services.store.close();
    const res = await other.app.inject({ method: 'GET', url: '/health' });
    expectProblem(res, 'service_unavailable');
    await other.app.close();
    await other.services.state.close();
  });
});

describe('every error path is problem+json with a registered code', () => {
  it('400 validation_failed for a query parameter on an API route that declares none (not an answer as if it filtered)', async () => {
    const s = await sessionFor(server);
    for (const url of ['/api/v1/trading/positions?asset=MOON', '/api/v1/time?x=1', '/api/v1/account/balances?asset=USDC']) {
      const res = await server.app.inject({ method: 'GET', url, headers: s.headers });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().code, url).toBe('validation_failed');
    }
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/trading/positions', headers: s.headers })).statusCode).toBe(200);
  });

  it('404 for an unknown route', async () => {
    expectProblem(await server.app.inject({ method: 'GET', url: '/api/v1/nope' }), 'not_found');
  });

  it('405 method_not_allowed for a known path with an unknown method, with Allow', async () => {
    const res = await server.app.inject({ method: 'DELETE', url: '/api/v1/time' });
    expectProblem(res, 'method_not_allowed');
    expect(res.headers.allow).toBe('GET, HEAD');
    const withParam = await server.app.inject({ method: 'PUT', url: '/api/v1/keys/key_01M8JSYZSJ80A5T53SZ76HJ90Z?x=1' });
    expectProblem(withParam, 'method_not_allowed');
    expect(String(withParam.headers.allow).split(', ').sort()).toEqual(['DELETE', 'GET', 'HEAD', 'PATCH']);
    expectProblem(await server.app.inject({ method: 'GET', url: '/api/v1/keys/key_01M8JSYZSJ80A5T53SZ76HJ90Z/nope' }), 'not_found');
  });

  it('a path that is not valid percent-encoding, or a parameter past the length limit, is a problem with the usual headers', async () => {
    for (const url of ['/api/v1/%zz', '/api/v1/tokens/%E0%A4%A', `/api/v1/keys/${'k'.repeat(300)}`]) {
      const res = await server.app.inject({ method: 'GET', url });
      const body = expectProblem(res, 'validation_failed');
      expect(Number(res.headers['x-api-server-time'])).toBeGreaterThan(0);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(JSON.stringify(body)).not.toMatch(/FST_|%zz|kkkk/);
    }
  });

  it('a request the HTTP parser refuses is answered as problem+json with the usual headers', async () => {
    const own = await startTestServer();
    try {
      const { port } = new URL(await own.app.listen({ host: '127.0.0.1', port: 0 }));
      const exchange = (raw: string) =>
        new Promise<{ status: number; headers: Record<string, string>; body: string }>((resolve, reject) => {
          const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(raw));
          let text = '';
          socket.on('data', (d) => (text += d.toString('utf8')));
          socket.on('error', reject);
          socket.on('close', () => {
            const [head = '', body = ''] = text.split('\r\n\r\n');
            const [statusLine = '', ...lines] = head.split('\r\n');
            const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
            resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
          });
        });
      const cases = [
        { raw: 'GET /api/v1/time HTTP/1.1\r\nHost: x\r\nBroken header\r\n\r\n', code: 'validation_failed' },
        { raw: `GET /api/v1/time HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, code: 'headers_too_large' },
      ] as const;
      for (const { raw, code } of cases) {
        const res = await exchange(raw);
        expect(res.status, code).toBe(ERRORS[code].status);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.headers['x-request-id']).toMatch(/^req_[0-9a-f]{32}$/);
        expect(Number(res.headers['x-api-server-time'])).toBeGreaterThan(0);
        expect(res.headers['x-content-type-options']).toBe('nosniff');
        expect(JSON.parse(res.body)).toMatchObject({ code, status: ERRORS[code].status, title: ERRORS[code].title, requestId: res.headers['x-request-id'] });
      }
    } finally {
      await own.close();
    }
  });

  it('a request whose headers trickle in past the headers deadline is answered 408 request_timeout near that deadline', async () => {
    // Node checks its request and headers deadlines every connectionsCheckingInterval (30 s by
    // default): a slow client sending a header line now and then would hold the connection for up
    // to 30 s past the configured deadline (the idle-socket deadline never fires while bytes come).
    const own = await startTestServer({ env: { MOONDRAFT_HEADERS_TIMEOUT_MS: '1000', MOONDRAFT_REQUEST_TIMEOUT_MS: '1000' } });
    try {
      const { port } = new URL(await own.app.listen({ host: '127.0.0.1', port: 0 }));
      const answer = await rawExchange(port, 'GET /api/v1/time HTTP/1.1\r\nHost: x\r\n', { trickle: () => `X-Slow-${Date.now()}: 1\r\n` });
      expect(answer.afterMs).toBeLessThan(4_000);
      expect(answer.text).toMatch(/^HTTP\/1\.1 408 /);
      expect(answer.text).toContain('"code":"request_timeout"');
    } finally {
      await own.close();
    }
  }, 20_000);

  it('a request whose body trickles in past the request deadline is answered 408 request_timeout, though its handler has begun', async () => {
    // Its headers arrived, so node:http already made its response (the socket's in-flight one): that
    // response is this very request's, not an earlier one's, and nothing of it was sent yet.
    const own = await startTestServer({ env: { MOONDRAFT_HEADERS_TIMEOUT_MS: '1000', MOONDRAFT_REQUEST_TIMEOUT_MS: '1000' } });
    try {
      const { port } = new URL(await own.app.listen({ host: '127.0.0.1', port: 0 }));
      const counted = vi.spyOn(own.services.ddosGuard, 'clientError');
      const { text: answer } = await rawExchange(port, 'POST /api/v1/auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{', { trickle: () => ' ' });
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(answer).toContain('"code":"request_timeout"');
      // Recorded (metrics, access log, audit) with the answer the client got: the body stream's
      // ECONNRESET is no database's, never a 503 (an alert on 5xx, for a slow client); counted once.
      await vi.waitFor(() => expect(own.services.metrics.httpRequests.value(['POST', '/api/v1/auth/challenge', '408'])).toBe(1));
      expect(own.services.metrics.httpRequests.value(['POST', '/api/v1/auth/challenge', '503'])).toBe(0);
      expect(own.logs.filter((l) => l.msg === 'request').map((l) => l.status)).toEqual([408]);
      expect(counted).toHaveBeenCalledTimes(1);
    } finally {
      await own.close();
    }
  }, 20_000);

  it('a refusal of a pipelined request is never sent while an earlier request on the connection is still being answered', async () => {
    // The client would read it as the answer to that earlier request: a 408 "did not arrive in
    // time" for an order that was received and is being placed. Closing the connection instead
    // leaves the earlier outcome unknown, as the contract says of a lost answer.
    const services = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: server.dataDir, MOONDRAFT_LOG_LEVEL: 'silent', MOONDRAFT_HEADERS_TIMEOUT_MS: '1000', MOONDRAFT_REQUEST_TIMEOUT_MS: '1000' }), { sqliteFile: ':memory:', processMetrics: false });
    const app = await buildServer(services);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    app.post('/__test/slow', { config: { permission: 'public' } }, async () => {
      await released;
      return { placed: true };
    });
    try {
      const { port } = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
      const body = '{}';
      const received = await new Promise<string>((resolve) => {
        const socket = net.connect(Number(port), '127.0.0.1', () =>
          // The first request is whole; the pipelined second never finishes its headers.
          socket.write(`POST /__test/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}GET /api/v1/time HTTP/1.1\r\nHost: x\r\n`),
        );
        let text = '';
        socket.on('data', (d) => (text += d.toString('utf8')));
        socket.on('error', () => {});
        socket.on('close', () => resolve(text));
        setTimeout(() => release(), 3_000).unref();
        setTimeout(() => socket.destroy(), 5_000).unref();
      });
      expect(received).not.toMatch(/^HTTP\/1\.1 408 /);
      if (received !== '') expect(received).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      release();
      await app.close();
      await services.close();
    }
  }, 20_000);

  it('malformed HTTP counts against the sending address in the DDoS guard: a flood of it gets the address blocked', async () => {
    // Loopback is exempt by default; here it stands for any client address.
    const own = await startTestServer({ env: { MOONDRAFT_DDOS_EXEMPT: 'none', MOONDRAFT_DDOS_CLIENT_ERRORS_PER_SEC: '5' } });
    try {
      const { port } = new URL(await own.app.listen({ host: '127.0.0.1', port: 0 }));
      const garbage = () =>
        new Promise<string>((resolve, reject) => {
          const socket = net.connect(Number(port), '127.0.0.1', () => socket.write('GET /api/v1/time HTTP/1.1\r\nHost: x\r\nBroken header\r\n\r\n'));
          let text = '';
          socket.on('data', (d) => (text += d.toString('utf8')));
          socket.on('error', reject);
          socket.on('close', () => resolve(text));
        });
      for (let i = 0; i < 5; i++) expect(await garbage()).toMatch(/^HTTP\/1\.1 400 /);
      await vi.waitFor(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/time`);
        expect(res.status).toBe(403);
        expect(((await res.json()) as { code: string }).code).toBe('ip_blocked');
      });
      expect(own.services.ipBlocks.check('127.0.0.1')).toMatchObject({ source: 'auto' });
    } finally {
      await own.close();
    }
  });

  it('a path the router cannot decode is observed like every other request: metrics and the access log', async () => {
    const series = () => server.services.metrics.httpRequests.value(['GET', 'unmatched', '400']);
    const lines = () => server.logs.filter((l) => l.msg === 'request' && l.status === 400 && l.route === 'unmatched').length;
    const [before, logged] = [series(), lines()];
    for (const url of ['/api/v1/%zz', `/api/v1/keys/${'k'.repeat(300)}`]) {
      expect((await server.app.inject({ method: 'GET', url })).statusCode).toBe(400);
    }
    expect(series()).toBe(before + 2);
    expect(lines()).toBe(logged + 2);
    expect(server.logText()).not.toMatch(/%zz|kkkk/);
  });

});

describe('Fastify errors and unexpected exceptions are mapped too', () => {
  let built: { app: Awaited<ReturnType<typeof buildServer>>; services: Services };
  beforeAll(async () => {
    const services = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: server.dataDir, MOONDRAFT_LOG_LEVEL: 'silent', MOONDRAFT_BODY_LIMIT: '2048' }), { sqliteFile: ':memory:', processMetrics: false });
    const app = await buildServer(services);
    const Body = Type.Object({ amount: Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?$' }) }, { additionalProperties: false });
    app.post('/__test/echo', { config: { permission: 'public' }, schema: { body: Body } }, async (request) => request.body);
    app.post('/__test/text', { config: { permission: 'public' }, schema: { body: Type.Object({ text: Type.String() }, { additionalProperties: false }) } }, async (request) => request.body);
    app.get('/__test/boom', { config: { permission: 'public' } }, async () => {
      throw new Error('SELECT secret FROM internals at /work/src/x.ts:1');
    });
    // A SyntaxError of the server's own making (a stored amount that is not a number, stored JSON
    // that does not parse), not anything about the request.
    app.get('/__test/corrupt', { config: { permission: 'public' } }, async () => ({ amount: String(BigInt('12x4')) }));
    app.get('/__test/corrupt-json', { config: { permission: 'public' } }, async () => JSON.parse('{"halted":') as object);
    await app.ready();
    built = { app, services };
  });
  afterAll(async () => {
    await built.app.close();
    await built.services.close();
  });

  it('accepts a valid body', async () => {
    const res = await built.app.inject({ method: 'POST', url: '/__test/echo', payload: { amount: '1.5' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ amount: '1.5' });
  });

  it('400 validation_failed for an unknown field, without echoing input', async () => {
    const res = await built.app.inject({ method: 'POST', url: '/__test/echo', payload: { amount: '1', evil: '<script>' } });
    const body = expectProblem(res, 'validation_failed');
    expect(JSON.stringify(body)).not.toContain('<script>');
    // Nor the name of the unknown field, which is the client's text as much as its value.
    const named = expectProblem(await built.app.inject({ method: 'POST', url: '/__test/echo', payload: { amount: '1', '<img src=x>': 1 } }), 'validation_failed');
    expect(named.detail).not.toContain('<img');
    expect(named.detail).toMatch(/unknown field/i);
    const { headers } = await sessionFor(server);
    const query = expectProblem(await server.app.inject({ method: 'GET', url: `/api/v1/market/trades/NOPE-USDC?${'q'.repeat(500)}=1`, headers }), 'validation_failed');
    expect(query.detail).not.toContain('qqq');
    // A plain short name (a typo of a real field, the usual case) is named: that is what a client
    // needs to fix its request, and it can carry no markup.
    const typo = expectProblem(await built.app.inject({ method: 'POST', url: '/__test/echo', payload: { amount: '1', amuont: '1' } }), 'validation_failed');
    expect(typo.detail).toContain('amuont');
  });

  it('400 validation_failed for a query number that is not a plain decimal (no exponent, hex or fraction read as something else)', async () => {
    const { headers } = await sessionFor(server);
    for (const limit of ['1.5', '1e2', '1e300', '0x10', '10abc', ' 5', 'Infinity', '99999999999999999999']) {
      const res = await server.app.inject({ method: 'GET', url: `/api/v1/market/trades/NOPE-USDC?limit=${encodeURIComponent(limit)}`, headers });
      expectProblem(res, 'validation_failed');
    }
    // A plain integer passes validation (the market does not exist: 404, not 400).
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/market/trades/NOPE-USDC?limit=10', headers })).statusCode).toBe(404);
  });

  it('400 validation_failed for a JSON number where a decimal string is required (no coercion)', async () => {
    expectProblem(await built.app.inject({ method: 'POST', url: '/__test/echo', payload: { amount: 1.5 } }), 'validation_failed');
  });

  it('400 validation_failed for malformed JSON and for an empty body', async () => {
    expectProblem(await built.app.inject({ method: 'POST', url: '/__test/echo', headers: { 'content-type': 'application/json' }, payload: '{"amount":' }), 'validation_failed');
    expectProblem(await built.app.inject({ method: 'POST', url: '/__test/echo', headers: { 'content-type': 'application/json' }, payload: '' }), 'validation_failed');
  });

  it('a request without a body that names Content-Type: application/json anyway (a client sending it on every call) is served as one without a body', async () => {
    // A route that takes no body: revoking an API key, logging out. The body is empty whatever the
    // header says; it is not an empty JSON text to refuse.
    const s = await sessionFor(server);
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: s.headers, payload: { label: 'empty body', scopes: ['market:read'] } });
    expect(created.statusCode).toBe(201);
    const revoked = await server.app.inject({ method: 'DELETE', url: `/api/v1/keys/${created.json().id}`, headers: { ...s.headers, 'content-type': 'application/json' }, payload: '' });
    expect(revoked.statusCode, revoked.body).toBe(200);
    expect(revoked.json().status).toBe('revoked');
    const logout = await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { ...s.headers, 'content-type': 'application/json; charset=utf-8' }, payload: '' });
    expect(logout.statusCode, logout.body).toBe(204);
    // A route that needs a body still refuses the empty one (the test above), as a missing body.
  });

  it('400 validation_failed for a body that is not valid UTF-8 (never read as other text than the signed bytes)', async () => {
    // The byte 0xff inside a string is not UTF-8; decoding it leniently would accept the body as U+FFFD.
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80]]) {
      const payload = Buffer.concat([Buffer.from('{"text":"a'), Buffer.from(bad), Buffer.from('"}')]);
      const res = await built.app.inject({ method: 'POST', url: '/__test/text', headers: { 'content-type': 'application/json' }, payload });
      expectProblem(res, 'validation_failed');
    }
    // Valid UTF-8, a charset parameter (which JSON ignores) and a leading BOM still parse.
    for (const [type, payload] of [
      ['application/json; charset=utf-8', Buffer.from('{"text":"é"}')],
      ['application/json', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"text":"é"}')])],
    ] as const) {
      const ok = await built.app.inject({ method: 'POST', url: '/__test/text', headers: { 'content-type': type }, payload });
      expect(ok.statusCode, type).toBe(200);
      expect(ok.json()).toEqual({ text: 'é' });
    }
  });

  it('415 for a JSON body labelled with another charset: a reader honouring the label would read other text from the signed bytes', async () => {
    // Valid UTF-8 ("é" is C3 A9), which latin1 reads as "Ã©".
    const payload = Buffer.from('{"text":"é"}');
    for (const type of ['application/json; charset=iso-8859-1', 'application/json;charset="latin1"', 'application/json; charset=UTF-16', 'application/json; charset=utf-8; charset=latin1', 'application/json; charset=']) {
      const res = await built.app.inject({ method: 'POST', url: '/__test/text', headers: { 'content-type': type }, payload });
      expectProblem(res, 'unsupported_media_type');
    }
    // UTF-8 however it is spelt, and other parameters, are fine.
    for (const type of ['application/json; charset=UTF-8', 'application/json;charset="utf-8"', 'application/json; charset=utf8', 'application/json; version=1']) {
      const ok = await built.app.inject({ method: 'POST', url: '/__test/text', headers: { 'content-type': type }, payload });
      expect(ok.statusCode, type).toBe(200);
      expect(ok.json()).toEqual({ text: 'é' });
    }
  });

  it('415 for a JSON body with a content coding (gzip, br…): the server decodes none, and a reader that does would read other bytes', async () => {
    // Compressed JSON was refused as "not valid UTF-8", and plain JSON labelled gzip was served as
    // it stands, though a proxy or firewall honouring the label reads (or fails to read) another body.
    const plain = Buffer.from('{"text":"é"}');
    for (const [encoding, payload] of [['gzip', gzipSync(plain)], ['gzip', plain], ['br', plain], ['deflate, identity', plain]] as const) {
      const res = await built.app.inject({ method: 'POST', url: '/__test/text', headers: { 'content-type': 'application/json', 'content-encoding': encoding }, payload });
      expectProblem(res, 'unsupported_media_type');
      expect(res.headers['accept-encoding']).toBe('identity');
    }
    // No coding, said so or not, is fine.
    for (const headers of [{}, { 'content-encoding': 'identity' }, { 'content-encoding': 'Identity' }]) {
      const ok = await built.app.inject({ method: 'POST', url: '/__test/text', headers: { 'content-type': 'application/json', ...headers }, payload: plain });
      expect(ok.statusCode, JSON.stringify(headers)).toBe(200);
    }
  });

  it('a body sent with a transfer coding besides chunked (gzip, chunked) is refused, not read as the bytes it stands for', async () => {
    // node:http undoes the chunked coding only: the body it hands on is still gzip, as a proxy that
    // honours the header would decode it, yet was served as JSON when those bytes parse as such.
    const own = await startTestServer();
    try {
      const { port } = new URL(await own.app.listen({ host: '127.0.0.1', port: 0 }));
      const send = (te: string) =>
        rawExchange(port, `POST /api/v1/auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: ${te}\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n`).then((r) => r.text);
      for (const te of ['gzip, chunked', 'deflate, chunked', 'x-custom, chunked']) {
        const answer = await send(te);
        expect(answer, te).toMatch(/^HTTP\/1\.1 400 /);
        expect(answer, te).toContain('"detail":"The request uses a transfer coding other than chunked"');
      }
      // Chunked alone is read as usual (the body then fails the route's own validation).
      expect(await send('chunked')).toContain('Invalid body');
    } finally {
      await own.close();
    }
  });

  it('400 for prototype-poisoning JSON', async () => {
    expectProblem(await built.app.inject({ method: 'POST', url: '/__test/echo', headers: { 'content-type': 'application/json' }, payload: '{"amount":"1","__proto__":{"admin":true}}' }), 'validation_failed');
  });

  it('413 payload_too_large beyond the body limit', async () => {
    expectProblem(await built.app.inject({ method: 'POST', url: '/__test/echo', payload: { amount: '1'.repeat(4000) } }), 'payload_too_large');
  });

  it('415 unsupported_media_type for a non-JSON body', async () => {
    expectProblem(await built.app.inject({ method: 'POST', url: '/__test/echo', headers: { 'content-type': 'text/plain' }, payload: 'amount=1' }), 'unsupported_media_type');
    expectProblem(await built.app.inject({ method: 'POST', url: '/__test/echo', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'amount=1' }), 'unsupported_media_type');
  });

  it('a SyntaxError thrown by the server’s own code is 500 internal_error, not the client’s invalid JSON', async () => {
    for (const url of ['/__test/corrupt', '/__test/corrupt-json']) {
      const body = expectProblem(await built.app.inject({ method: 'GET', url }), 'internal_error');
      expect(body.detail).not.toMatch(/JSON|12x4/);
    }
  });

  it('500 internal_error carries only the request id; the detail goes to the log', async () => {
    const res = await built.app.inject({ method: 'GET', url: '/__test/boom' });
    const body = expectProblem(res, 'internal_error');
    expect(JSON.stringify(body)).not.toContain('secret');
  });
});

describe('shutting down', () => {
  // Also a request whose path the router cannot decode, which no hook sees (frameworkErrors).
  it.each(['/api/v1/time', '/api/v1/%zz'])('a request (%s) that arrives on a kept-alive connection while the server drains is a problem+json 503 with the usual headers', async (path) => {
    const draining = await startTestServer();
    const url = new URL(await draining.app.listen({ host: '127.0.0.1', port: 0 }));
    const socket = net.connect(Number(url.port), '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    let received = '';
    socket.on('data', (d) => (received += d));
    const body = JSON.stringify({ address: 'x'.repeat(100) });
    // The first request is in flight (half its body sent) when the server starts closing.
    socket.write(`POST /api/v1/in-flight HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 50)}`);
    await new Promise((r) => setTimeout(r, 100));
    const closed = draining.close();
    await new Promise((r) => setTimeout(r, 100));
    socket.write(`${body.slice(50)}GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`);
    await closed;
    await new Promise((r) => setTimeout(r, 100));
    socket.destroy();
    const responses = received.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    const second = responses[1]!;
    expect(second).toMatch(/^HTTP\/1\.1 503 /);
    expect(second).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(second).toMatch(/\r\nx-request-id: req_[0-9a-f]{32}\r\n/i);
    expect(second).toMatch(/\r\nx-api-server-time: \d+\r\n/i);
    expect(second).toMatch(/\r\nretry-after: \d+\r\n/i);
    expect(second).toContain('"code":"service_unavailable"');
  });
});

describe('every /api route declares a permission', () => {
  it('refuses to start with a route that does not', async () => {
    const services = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: server.dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }), { sqliteFile: ':memory:', processMetrics: false });
    const app = await buildServer(services);
    expect(() => app.get('/api/v1/forgotten', async () => 'x')).toThrow(/declares no permission/);
    await app.close();
    await services.close();
  });
});
