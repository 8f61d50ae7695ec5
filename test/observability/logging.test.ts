import { closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, outlivesItsReader, redactDeep, REDACTED } from '../../src/observability/logger.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

const SECRET = 'mds_TOPSECRET_8f3kQ2v9ZyX1pL0aWc7nRt5uHe4b';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ env: { MOONDRAFT_LOG_LEVEL: 'trace' } });
});
afterAll(() => server.close());

describe('no secret reaches a log line', () => {
  it('wherever a client puts it: headers, cookies, query, path, body', async () => {
    const s = await sessionFor(server);
    const requests = [
      { method: 'GET', url: '/api/v1/account', headers: { authorization: `Bearer ${SECRET}` } },
      { method: 'GET', url: '/api/v1/account', headers: { authorization: s.headers.authorization, cookie: `session=${SECRET}` } },
      { method: 'GET', url: '/api/v1/account', headers: { 'x-api-key': SECRET, 'x-api-signature': SECRET, 'x-api-timestamp': SECRET } },
      { method: 'GET', url: `/api/v1/time?apiSecret=${SECRET}&password=${SECRET}` },
      { method: 'GET', url: `/api/v1/keys/${SECRET}` },
      { method: 'GET', url: `/api/v1/${SECRET}?x=${SECRET}` },
      { method: 'POST', url: '/api/v1/account', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ apiSecret: SECRET, privateKey: SECRET, nested: { refreshToken: SECRET } }) },
      { method: 'POST', url: '/api/v1/time', headers: { 'content-type': 'application/json' }, payload: `{"broken": "${SECRET}` },
      { method: 'GET', url: '/api/v1/time', headers: { 'x-custom-secret': SECRET, 'user-agent': 'curl' } },
    ] as const;
    for (const r of requests) {
      const res = await server.app.inject(r as never);
      expect(res.statusCode).toBeGreaterThanOrEqual(200);
      expect(res.body).not.toContain(SECRET);
    }
    // The server did log these requests (so the check below is meaningful)…
    expect(server.logs.filter((l) => l.msg === 'request').length).toBeGreaterThanOrEqual(requests.length);
    // …and the secret, and the real access token, appear in none of them.
    expect(server.logText()).not.toContain(SECRET);
    expect(server.logText()).not.toContain(s.accessToken);
    expect(server.logText()).not.toContain(s.accessToken.split('.')[2]!);
  });

  it('redacts secret-named fields at any depth when code logs objects', () => {
    server.services.log.info({ user: { apiSecret: SECRET, profile: { privateKey: SECRET, password: SECRET, name: 'ok' } }, list: [{ signature: SECRET }] }, 'diagnostic');
    const line = server.logs.find((l) => l.msg === 'diagnostic')!;
    expect(JSON.stringify(line)).not.toContain(SECRET);
    expect(line).toMatchObject({ user: { apiSecret: REDACTED, profile: { privateKey: REDACTED, password: REDACTED, name: 'ok' } }, list: [{ signature: REDACTED }] });
  });

  it('redacts past the depth it walks: deeper structure is cut, not logged as is', () => {
    let deep: Record<string, unknown> = { password: SECRET };
    for (let i = 0; i < 12; i++) deep = { level: deep };
    server.services.log.info({ deep }, 'deep diagnostic');
    const line = server.logs.find((l) => l.msg === 'deep diagnostic')!;
    expect(line).toBeDefined();
    expect(JSON.stringify(line)).not.toContain(SECRET);
  });

  it('redacts secret-named fields of a logged error too', () => {
    const err = Object.assign(new Error('key check failed'), { code: 'E_TEST', apiSecret: SECRET, context: { refreshToken: SECRET } });
    server.services.log.error({ err }, 'error diagnostic');
    const line = server.logs.find((l) => l.msg === 'error diagnostic')!;
    expect(JSON.stringify(line)).not.toContain(SECRET);
    expect(line.err).toMatchObject({ type: 'Error', message: 'key check failed', code: 'E_TEST', apiSecret: REDACTED, context: { refreshToken: REDACTED } });
  });

  it('redacts secret-named fields of an error wherever it sits: inside a logged error’s fields, or under another name', () => {
    const inner = Object.assign(new Error('signer refused'), { apiSecret: SECRET, signature: SECRET });
    const err = Object.assign(new Error('outer failure'), { details: { attempt: 1, inner } });
    server.services.log.error({ err, context: { during: inner }, error: inner }, 'nested error diagnostic');
    const line = server.logs.find((l) => l.msg === 'nested error diagnostic')!;
    expect(line).toBeDefined();
    expect(JSON.stringify(line)).not.toContain(SECRET);
    // Still logged as errors (type and message), with the secret-named fields censored.
    expect(line.err).toMatchObject({ type: 'Error', message: 'outer failure', details: { attempt: 1, inner: { type: 'Error', message: 'signer refused', apiSecret: REDACTED, signature: REDACTED } } });
    expect(line.context).toMatchObject({ during: { type: 'Error', message: 'signer refused', apiSecret: REDACTED } });
    expect(line.error).toMatchObject({ type: 'Error', message: 'signer refused', signature: REDACTED });
  });

  it('not even from a request the HTTP parser refuses (its error carries the raw bytes received)', async () => {
    const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = new URL(url);
    // A header line without a colon: Node's parser refuses the request before Fastify sees it.
    const raw = `POST /api/v1/trading/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SECRET}\r\nX-API-Signature: ${SECRET}\r\nBroken header\r\n\r\n`;
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(raw));
      let text = '';
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    const line = server.logs.find((l) => l.msg === 'client error');
    // The refusal was logged (so the check below is meaningful)…
    expect(line).toBeDefined();
    // …without the request's bytes, in any encoding.
    const text = JSON.stringify(line);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain([...Buffer.from(SECRET)].join(','));
    expect(text).not.toContain(Buffer.from(SECRET).toString('base64'));
  });

  it('redacts a bare token, a JWT and connection URLs (they may carry passwords) by name too', () => {
    const out = redactDeep({ token: SECRET, jwt: SECRET, databaseUrl: `postgres://u:${SECRET}@db/x`, REDIS_URL: `redis://:${SECRET}@r`, connectionString: SECRET, url: 'http://127.0.0.1:8080', tokenType: 'Bearer' });
    expect(out).toEqual({ token: REDACTED, jwt: REDACTED, databaseUrl: REDACTED, REDIS_URL: REDACTED, connectionString: REDACTED, url: 'http://127.0.0.1:8080', tokenType: 'Bearer' });
  });

  it('redactDeep leaves ordinary data alone', () => {
    expect(redactDeep({ a: 1, b: { c: 'x' }, d: [1, 2] })).toEqual({ a: 1, b: { c: 'x' }, d: [1, 2] });
  });
});

describe('a log output that goes away', () => {
  it('ends the logging, not the process: a write error other than EPIPE neither crashes it nor makes the flush at exit spin', async () => {
    // A closed terminal fails every write with EIO; a descriptor that takes no writes (EBADF here)
    // stands in for it. pino forgives only EPIPE: any other error was an unhandled 'error' event
    // (an uncaught exception, failing this test), and sonic-boom 4's flushSync retried it for ever
    // (this test timing out).
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'md-log-gone-')), 'log');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    try {
      const output = outlivesItsReader(pino.destination({ dest: fd, sync: false, minLength: 4096 }));
      const log = createLogger('info', output);
      for (let i = 0; i < 100; i++) log.info({ i }, 'a line long enough to pass the buffer of 4 KiB soon');
      const write = output.write;
      const until = Date.now() + 2_000;
      while (output.write === write && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(output.write).not.toBe(write);
      log.info('after the output went away');
      expect(() => output.flushSync()).not.toThrow();
      // The same when the flush at exit is the first to meet the error.
      const other = outlivesItsReader(pino.destination({ dest: fd, sync: false, minLength: 4096 }));
      createLogger('info', other).info('buffered, never written');
      expect(() => other.flushSync()).not.toThrow();
    } finally {
      closeSync(fd);
    }
  });
});
