import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDevCert } from '../../src/cli/dev-cert.js';
import { ERRORS } from '../../src/errors/registry.js';
import { DRAIN_GRACE_MS, listen } from '../../src/http/listen.js';
import { ManualClock } from '../../src/lib/clock.js';
import { METRICS_REUSE_MS } from '../../src/observability/metrics.js';
import { Keyring } from '../../src/security/crypto/keyring.js';
import { ensureKeysetFile } from '../../src/security/identity/signing-keys.js';
import { SECURITY_HEADERS } from '../../src/http/stages/request-context.js';
import { sessionFor } from '../support/auth.js';
import { freePort } from '../support/process.js';
import { rawExchange } from '../support/raw-http.js';
import { startTestServer, type TestServer } from '../support/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

describe('system endpoints', () => {
  it('/metrics counts requests by route pattern and status, with latency', async () => {
    await server.app.inject({ method: 'GET', url: '/api/v1/time' });
    await server.app.inject({ method: 'GET', url: '/api/v1/account' });
    const res = await server.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/moondraft_http_requests_total\{method="GET",route="\/api\/v1\/time",status="200"\} [1-9]/);
    expect(res.body).toMatch(/moondraft_http_requests_total\{method="GET",route="\/api\/v1\/account",status="401"\} [1-9]/);
    expect(res.body).toContain('moondraft_http_request_duration_seconds_bucket');
  });

  it('live never serves /metrics on the API port: its counters of refusals, blocks and suspensions tell an attacker whether they were noticed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'md-live-metrics-'));
    const keys = path.join(dir, 'jwt.json');
    ensureKeysetFile(keys, Date.now());
    const env = { MOONDRAFT_ENV: 'live', MOONDRAFT_DATA_DIR: dir, MOONDRAFT_MASTER_KEY: Keyring.generateSpec(1), MOONDRAFT_JWT_KEYS_FILE: keys, MOONDRAFT_TRUSTED_PROXIES: '127.0.0.1', MOONDRAFT_PUBLIC_URL: 'https://api.example.test' };
    const live = await startTestServer({ env });
    try {
      const res = await live.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '203.0.113.7' });
      expect(res.statusCode).toBe(404);
      expect(res.body).not.toContain('moondraft_');
    } finally {
      await live.close();
    }
    // On a port of their own they are served, in live too.
    const port = await freePort();
    const withPort = await startTestServer({ env: { ...env, MOONDRAFT_METRICS_PORT: String(port), HOST: '127.0.0.1' } });
    const listening = await listen(withPort);
    try {
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    } finally {
      await listening.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('/metrics counts the methods the API does not answer together as "other": a client sending them adds no series', async () => {
    const own = await startTestServer();
    try {
      const series = async () => {
        const text = await own.services.metrics.text();
        return text.split('\n').filter((l) => l.startsWith('moondraft_http_requests_total{'));
      };
      const exotic = ['PROPFIND', 'MKCOL', 'LINK', 'UNLINK', 'SOURCE', 'TRACE', 'PURGE', 'LOCK', 'UNLOCK', 'COPY', 'MOVE', 'SEARCH', 'REPORT', 'NOTIFY'];
      for (const method of exotic) {
        await own.app.inject({ method: method as 'GET', url: '/no/such/path' });
        await own.app.inject({ method: method as 'GET', url: '/api/v1/time' });
      }
      const lines = await series();
      for (const method of exotic) expect(lines.join('\n')).not.toContain(`method="${method}"`);
      const unmatched = lines.filter((l) => l.includes('method="other"'));
      // One series per status met (404 for an unknown path, 405 for a known one), whatever the method.
      expect(unmatched.length).toBeLessThanOrEqual(2);
      const total = unmatched.reduce((n, l) => n + Number(l.split(' ').pop()), 0);
      expect(total).toBe(exotic.length * 2);
      // The methods the API answers keep their own label.
      await own.app.inject({ method: 'DELETE', url: '/api/v1/time' });
      expect((await series()).some((l) => l.includes('method="DELETE"'))).toBe(true);
    } finally {
      await own.close();
    }
  });

  it('/metrics records the real latency of a path the router cannot decode, not 0 s', async () => {
    // A clock that holds up its caller once armed: the refusal of the bad path then takes at least
    // that long (it stamps X-API-Server-Time), and its latency must show it.
    let slow = false;
    const clock = {
      now: () => {
        if (slow) {
          slow = false;
          const until = performance.now() + 50;
          while (performance.now() < until);
        }
        return Date.now();
      },
    };
    const own = await startTestServer({ clock });
    try {
      slow = true;
      const res = await own.app.inject({ method: 'GET', url: '/api/v1/%zz' });
      expect(res.statusCode).toBe(400);
      expect(slow).toBe(false);
      const text = await own.services.metrics.text();
      const series = 'method="GET",route="unmatched",status="400"';
      const count = text.split('\n').find((l) => l.startsWith(`moondraft_http_request_duration_seconds_count{${series}}`));
      const sum = text.split('\n').find((l) => l.startsWith(`moondraft_http_request_duration_seconds_sum{${series}}`));
      expect(Number(count?.split(' ').pop())).toBe(1);
      expect(Number(sum?.split(' ').pop())).toBeGreaterThanOrEqual(0.05);
    } finally {
      await own.close();
    }
  });

  it('/metrics renders once per second however many scrape it (public and unlimited: a flood costs one rendering)', async () => {
    const clock = new ManualClock(Date.UTC(2026, 5, 1));
    const own = await startTestServer({ clock });
    try {
      let renders = 0;
      const registry = own.services.metrics.registry;
      const render = registry.metrics.bind(registry);
      registry.metrics = () => {
        renders++;
        return render();
      };
      const count = (body: string) => Number(/moondraft_http_requests_total\{method="GET",route="\/api\/v1\/time",status="200"\} (\d+)/.exec(body)?.[1] ?? 0);
      const scrape = () => own.app.inject({ method: 'GET', url: '/metrics' });
      await own.app.inject({ method: 'GET', url: '/api/v1/time' });
      const first = await scrape();
      expect(count(first.body)).toBe(1);
      const scrapes = await Promise.all(Array.from({ length: 20 }, scrape));
      await own.app.inject({ method: 'GET', url: '/api/v1/time' });
      clock.advance(METRICS_REUSE_MS - 1);
      const within = await scrape();
      expect(renders).toBe(1);
      for (const res of [...scrapes, within]) expect(res.body).toBe(first.body);
      clock.advance(1);
      const next = await scrape();
      expect(renders).toBe(2);
      expect(count(next.body)).toBe(2);
      // A clock stepped back does not keep an old rendering.
      clock.advance(-5_000);
      await scrape();
      expect(renders).toBe(3);
    } finally {
      await own.close();
    }
  });

  it('/openapi.json is OpenAPI 3.1 generated from the route schemas', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.paths['/api/v1/time'].get).toBeDefined();
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-API-Key' });
  });

  it('/openapi.json names the headers an API-key request needs: signed everywhere but market data', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.components.securitySchemes.apiTimestamp).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-API-Timestamp' });
    expect(doc.components.securitySchemes.apiSignature).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-API-Signature' });
    const signed = [{ bearer: [] }, { apiKey: [], apiTimestamp: [], apiSignature: [] }];
    expect(doc.paths['/api/v1/account'].get.security).toEqual(signed);
    expect(doc.paths['/api/v1/trading/orders'].post.security).toEqual(signed);
    expect(doc.paths['/api/v1/account/withdrawals'].post.security).toEqual(signed);
    expect(doc.paths['/api/v1/sandbox/faucet'].post.security).toEqual(signed);
    expect(doc.paths['/api/v1/market/tickers'].get.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
    expect(doc.paths['/api/v1/keys'].post.security).toEqual([{ bearer: [] }]);
    expect(doc.paths['/api/v1/time'].get.security).toBeUndefined();
    // As the server behaves: a key without a signature is refused on /account, accepted for market data.
    const owner = await sessionFor(server);
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'doc check', scopes: ['market:read', 'account:read'] } });
    expect(created.statusCode).toBe(201);
    const headers = { 'x-api-key': created.json().apiKey as string };
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/account', headers })).json().code).toBe('signature_required');
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/market/tickers', headers })).statusCode).toBe(200);
  });

  it('/openapi.json marks a body as required only where the route requires one', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const [path, method] of [
      ['/api/v1/keys/{id}/regenerate', 'post'],
      ['/api/v1/admin/keys/{id}/suspend', 'post'],
      ['/api/v1/admin/keys/{id}/unsuspend', 'post'],
      ['/api/v1/admin/withdrawals/{id}/approve', 'post'],
      ['/api/v1/admin/withdrawals/{id}/reject', 'post'],
      ['/api/v1/trading/positions/{asset}/close', 'post'],
    ] as const) {
      expect(doc.paths[path][method].requestBody.required, `${method} ${path}`).toBe(false);
    }
    expect(doc.paths['/api/v1/keys'].post.requestBody.required).toBe(true);
    expect(doc.paths['/api/v1/trading/orders'].post.requestBody.required).toBe(true);
  });

  it('/openapi.json declares 204 for the routes that answer 204 with no body', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const [path, method] of [
      ['/api/v1/auth/logout', 'post'],
      ['/api/v1/security/sessions/{id}', 'delete'],
      ['/api/v1/account/withdrawal-addresses/{id}', 'delete'],
      ['/api/v1/admin/ip-blocks', 'delete'],
    ] as const) {
      expect(Object.keys(doc.paths[path][method].responses).filter((s) => s !== 'default'), `${method} ${path}`).toEqual(['204']);
    }
  });

  it('/openapi.json documents the refusals every route may answer: problem+json with a registered code', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    let operations = 0;
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, any> }>>)) {
      for (const [method, op] of Object.entries(ops)) {
        operations++;
        const refusal = op.responses.default?.content?.['application/problem+json']?.schema;
        expect(refusal, `${method} ${path}`).toBeDefined();
        expect(refusal.required).toEqual(expect.arrayContaining(['type', 'title', 'status', 'detail', 'code', 'requestId']));
        expect(refusal.properties.code.enum).toEqual(Object.keys(ERRORS));
        expect(Object.keys(op.responses).some((s) => /^2/.test(s)), `${method} ${path} keeps its success response`).toBe(true);
      }
    }
    expect(operations).toBeGreaterThan(50);
    // /health in particular: its 503 when not ready is such a problem.
    expect(doc.paths['/health'].get.responses.default).toBeDefined();
    // Documentation only: refusals are still sent as they were, problem+json.
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { 'x-api-key': 'md_test_1111111111111111111111111111', 'x-api-signature': '00', 'x-api-timestamp': String(Date.now()) } });
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: 'invalid_api_key', requestId: res.headers['x-request-id'] });
  });

  it('/docs renders the reference', async () => {
    const res = await server.app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).toMatch(/swagger/i);
  });

  it('/docs pages carry the docs CSP the server sets: never framed, nothing loaded from other origins', async () => {
    for (const url of ['/docs', '/docs/', '/docs/static/swagger-ui.css', '/docs/json', '/docs/static/nope.js']) {
      const res = await server.app.inject({ method: 'GET', url });
      const csp = String(res.headers['content-security-policy']);
      expect(csp, url).toContain("frame-ancestors 'none'");
      expect(csp, url).not.toMatch(/frame-ancestors 'self'|https:|validator\.swagger\.io/);
      expect(res.headers['x-frame-options'], url).toBe('DENY');
    }
  });

  it('/.well-known/jwks.json publishes the RS256 public key with its kid and no private part', async () => {
    const jwks = (await server.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(jwks.keys[0].kid).toEqual(expect.any(String));
    expect(jwks.keys[0].d).toBeUndefined();
    expect(Object.keys(jwks.keys[0]).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']);
    // The key verifies tokens the server issued (n and e went out whole).
    const { importJWK } = await import('jose');
    await expect(importJWK(jwks.keys[0], 'RS256')).resolves.toBeDefined();
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.paths['/.well-known/jwks.json'].get.responses['200'].content['application/json'].schema.properties.keys).toBeDefined();
  });
});

describe('the separate metrics port', () => {
  it('answers with X-Request-Id and X-API-Server-Time, and problem+json for anything but /metrics', async () => {
    const port = await freePort();
    const own = await startTestServer({ env: { MOONDRAFT_METRICS_PORT: String(port), HOST: '127.0.0.1' } });
    const listening = await listen(own);
    try {
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('moondraft_http_requests_total');
      // A scrape configured with URL parameters (Prometheus `params`) gets the same answer.
      const withQuery = await fetch(`http://127.0.0.1:${port}/metrics?format=prometheus`);
      expect(withQuery.status).toBe(200);
      expect(await withQuery.text()).toContain('moondraft_http_requests_total');
      const missing = await fetch(`http://127.0.0.1:${port}/api/v1/time`);
      expect(missing.status).toBe(404);
      expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const problem = await missing.json();
      expect(problem).toMatchObject({ code: 'not_found', status: 404, requestId: missing.headers.get('x-request-id') });
      // /metrics with another method is 405 with Allow, as on the API port, not a 404.
      const posted = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' });
      expect(posted.status).toBe(405);
      expect(posted.headers.get('allow')).toBe('GET, HEAD');
      expect(posted.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await posted.json()).toMatchObject({ code: 'method_not_allowed', status: 405, type: 'https://moondraft.dev/problems/method_not_allowed', requestId: posted.headers.get('x-request-id') });
      for (const res of [metrics, missing]) {
        expect(res.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{32}$/);
        expect(Number(res.headers.get('x-api-server-time'))).toBeGreaterThan(0);
        // The security headers of every answer, as on the API port.
        for (const [name, value] of SECURITY_HEADERS) expect(res.headers.get(name), name).toBe(value);
      }
      // A request Node's HTTP parser refuses gets problem+json with a request id here too.
      const raw = await rawExchange(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n').then((r) => r.text);
      expect(raw).toMatch(/^HTTP\/1\.1 400 /);
      expect(raw).toMatch(/\r\nContent-Type: application\/problem\+json/i);
      expect(raw).toMatch(/\r\nX-Request-Id: req_[0-9a-f]{32}\r\n/i);
      expect(raw).toContain('"code":"validation_failed"');
    } finally {
      await listening.stop();
    }
  });

  it('listens on MOONDRAFT_METRICS_HOST when set, not on HOST', async () => {
    // An operator keeps the metrics on a private address while the API listens on a public one.
    const port = await freePort();
    const own = await startTestServer({ env: { MOONDRAFT_METRICS_PORT: String(port), HOST: '127.0.0.1', MOONDRAFT_METRICS_HOST: '127.0.0.2' } });
    const listening = await listen(own);
    try {
      expect((await fetch(`http://127.0.0.2:${port}/metrics`)).status).toBe(200);
      await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
    } finally {
      await listening.stop();
    }
  });

  it('holds slow clients to the configured deadlines, as the API port does', async () => {
    const port = await freePort();
    const own = await startTestServer({ env: { MOONDRAFT_METRICS_PORT: String(port), HOST: '127.0.0.1', MOONDRAFT_CONNECTION_TIMEOUT_MS: '1000' } });
    const listening = await listen(own);
    try {
      // A connection that sends nothing is closed once the idle-socket deadline passes (Node's
      // default would keep it open for good).
      const closedAfter = await msUntilIdleClose(port);
      expect(closedAfter).toBeLessThan(5_000);
      expect(closedAfter).toBeGreaterThanOrEqual(900);
    } finally {
      await listening.stop();
    }
  });

  it('starts with a request deadline shorter than the default headers deadline (the side port is built with both)', async () => {
    // MOONDRAFT_REQUEST_TIMEOUT_MS may be as low as 1000 ms while the headers deadline keeps its
    // 10 s default; node:http refuses to build a server whose headers deadline exceeds its request
    // deadline, so the metrics port must not be handed such a pair.
    const port = await freePort();
    const own = await startTestServer({ env: { MOONDRAFT_METRICS_PORT: String(port), HOST: '127.0.0.1', MOONDRAFT_REQUEST_TIMEOUT_MS: '5000' } });
    try {
      const listening = await listen(own);
      try {
        expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
      } finally {
        await listening.stop();
      }
    } finally {
      await own.close();
    }
  });

  it('a slow client on the metrics port holds neither the API port open nor the stop past its grace', async () => {
    // The side ports were closed first, and awaited: a connection trickling its headers to the
    // metrics port kept the API port accepting requests until the headers deadline, and only then
    // did the API drain (and its grace) begin, past the 15 s after which serve exits regardless.
    const port = await freePort();
    const own = await startTestServer({ env: { MOONDRAFT_METRICS_PORT: String(port), HOST: '127.0.0.1', MOONDRAFT_HEADERS_TIMEOUT_MS: '30000' } });
    const listening = await listen(own);
    const apiPort = Number(new URL(listening.url).port);
    const slow = net.connect(port, '127.0.0.1');
    await new Promise<void>((r) => slow.once('connect', () => r()));
    slow.on('error', () => {});
    slow.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => slow.write(`X-Slow-${Date.now()}: 1\r\n`), 200);
    try {
      const stopped = listening.stop();
      await new Promise((r) => setTimeout(r, 500));
      const probe = await new Promise<string>((resolve) => {
        const s = net.connect(apiPort, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve('connected');
        });
        s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
      expect(probe).toBe('ECONNREFUSED');
      const started = Date.now();
      await stopped;
      expect(Date.now() - started).toBeLessThan(DRAIN_GRACE_MS + 2_000);
    } finally {
      clearInterval(trickle);
      slow.destroy();
    }
  }, 30_000);

  it('a metrics port already taken fails the start with an error (no uncaught exception, no side port left open)', async () => {
    const taken = net.createServer();
    const port = await new Promise<number>((resolve) => taken.listen(0, '127.0.0.1', () => resolve((taken.address() as net.AddressInfo).port)));
    const own = await startTestServer({ env: { MOONDRAFT_METRICS_PORT: String(port), HOST: '127.0.0.1' } });
    try {
      const started = listen(own);
      const outcome = await Promise.race([started.then(() => 'listening', (err: Error) => err.message), new Promise((r) => setTimeout(() => r('hung'), 3_000))]);
      expect(outcome).toMatch(/EADDRINUSE/);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
      await own.close();
    }
  });
});

/**
 * Milliseconds until the server closes a connection to `port` that sends nothing, or Infinity when
 * it is still open after 5 s.
 */
function msUntilIdleClose(port: number): Promise<number> {
  const started = Date.now();
  return new Promise<number>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('close', () => resolve(Date.now() - started));
    socket.on('error', reject);
    setTimeout(() => {
      socket.destroy();
      resolve(Infinity);
    }, 5_000).unref();
  });
}

/** A TLS server (dev certificate) with its plain-HTTP redirect port, listening; `stop` cleans up. */
async function withRedirectPort(): Promise<{ port: number; listening: Awaited<ReturnType<typeof listen>>; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'md-tls-'));
  const { certFile, keyFile } = await writeDevCert(dir, ['localhost', '127.0.0.1']);
  const port = await freePort();
  const own = await startTestServer({ env: { MOONDRAFT_TLS_CERT: certFile, MOONDRAFT_TLS_KEY: keyFile, HOST: '127.0.0.1', MOONDRAFT_HTTP_REDIRECT_PORT: String(port) } });
  const listening = await listen(own);
  return {
    port,
    listening,
    async stop() {
      await listening.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('the API port under TLS', () => {
  it('closes a connection that never completes the TLS handshake once the idle-socket deadline passes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'md-tls-'));
    const { certFile, keyFile } = await writeDevCert(dir, ['localhost', '127.0.0.1']);
    const own = await startTestServer({ env: { MOONDRAFT_TLS_CERT: certFile, MOONDRAFT_TLS_KEY: keyFile, HOST: '127.0.0.1', MOONDRAFT_CONNECTION_TIMEOUT_MS: '1000' } });
    const listening = await listen(own);
    try {
      const { port } = new URL(listening.url);
      // A plain TCP connection that sends no ClientHello: without a handshake deadline Node's TLS
      // server keeps it for 120 s whatever the configured idle deadline, so a slow client holds
      // sockets twice as long as on plain HTTP (or longer, with a shorter configured deadline).
      const closedAfter = await msUntilIdleClose(Number(port));
      expect(closedAfter).toBeLessThan(5_000);
      expect(closedAfter).toBeGreaterThanOrEqual(900);
    } finally {
      await listening.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('the redirect port', () => {
  it('never sends HSTS over plain HTTP, not even when answering a request the HTTP parser refuses', async () => {
    // RFC 6797 §7.2: an HSTS host must not send the header over a non-secure transport.
    const { port, listening, stop } = await withRedirectPort();
    try {
      const redirect = await fetch(`http://127.0.0.1:${port}/api/v1/time`, { redirect: 'manual' });
      expect(redirect.status).toBe(308);
      expect(redirect.headers.get('strict-transport-security')).toBeNull();
      const raw = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n').then((r) => r.text);
      expect(raw).toMatch(/^HTTP\/1\.1 400 /);
      expect(raw).toMatch(/\r\nX-Request-Id: req_[0-9a-f]{32}\r\n/i);
      expect(raw.toLowerCase()).not.toContain('strict-transport-security');
      // The HTTPS port's answer to the same still carries it.
      const overTls = await rawExchange(Number(new URL(listening.url).port), 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', { tls: true }).then((r) => r.text);
      expect(overTls).toMatch(/^HTTP\/1\.1 400 /);
      expect(overTls.toLowerCase()).toContain('strict-transport-security: max-age=');
    } finally {
      await stop();
    }
  }, 30_000);

  it('refuses requests that carry credentials (403 https_required) instead of redirecting them', async () => {
    // A client configured with the http:// URL would otherwise keep working, sending every token,
    // key and signed request in clear text: it must fail loudly at its first request.
    const { port, listening, stop } = await withRedirectPort();
    try {
      for (const headers of [{ authorization: 'Bearer a.b.c' }, { 'x-api-key': 'md_test_x' }, { 'x-api-signature': 'ab' }] as Array<Record<string, string>>) {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/account`, { redirect: 'manual', headers });
        expect(res.status, JSON.stringify(headers)).toBe(403);
        expect(res.headers.get('location')).toBeNull();
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(await res.json()).toMatchObject({ code: 'https_required', status: 403, requestId: res.headers.get('x-request-id') });
      }
      // A refresh carries its token in the body, a sign-in gets a token pair back: refused too.
      for (const path of ['/api/v1/auth/refresh', '/api/v1/auth/login', '/api/v1/auth/refresh?x=1']) {
        const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/json' }, body: '{"refreshToken":"mdr_x"}' });
        expect(res.status, path).toBe(403);
        expect(res.headers.get('location'), path).toBeNull();
        expect(((await res.json()) as { code: string }).code, path).toBe('https_required');
      }
      // Without credentials: still redirected (a browser or a health check typed with http://).
      expect((await fetch(`http://127.0.0.1:${port}/api/v1/time`, { redirect: 'manual' })).status).toBe(308);
      // Cookies are no credential here (the API never reads one): a browser sends whatever cookies
      // its site's other pages set without Secure (analytics, consent), and must still be sent on
      // to HTTPS, not stranded on a 403.
      expect((await fetch(`http://127.0.0.1:${port}/docs`, { redirect: 'manual', headers: { cookie: '_ga=GA1.1.1.1; consent=yes' } })).status).toBe(308);
    } finally {
      await stop();
    }
  }, 30_000);
});
