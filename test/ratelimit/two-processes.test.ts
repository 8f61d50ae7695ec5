import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { PG_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { expectBurstRespectsLimit } from './burst.js';
import { startServerProcess, type ServerProcess } from './processes.js';

const up = (await serviceAvailable('redis')) && (await serviceAvailable('postgres'));

/**
 * Two real server processes (as `npm start` runs them) behind one Redis and one PostgreSQL
 * schema, sharing one data dir (signing keys, master key), as a load balancer would see them.
 * The test process talks to both over HTTP; a third, in-test server on the same stores issues
 * session tokens.
 */
describe.runIf(up)('two server processes on one Redis and one PostgreSQL schema', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-2p-'));
  const isolation = newIsolation();
  // One public URL (so one token issuer) for all; the test is the trusted proxy, so
  // X-Forwarded-For sets the client address.
  const env = { MOONDRAFT_PUBLIC_URL: 'http://127.0.0.1:8080', MOONDRAFT_TRUSTED_PROXIES: '127.0.0.1' };
  let seed: TestServer;
  let a: ServerProcess;
  let b: ServerProcess;

  beforeAll(async () => {
    seed = await startTestServer({ backend: 'scaleout', dataDir, isolation, env }); // migrates, writes the keys
    const processEnv = { ...env, MOONDRAFT_DATA_DIR: dataDir, DATABASE_URL: PG_URL, MOONDRAFT_PG_SCHEMA: isolation.pgSchema, REDIS_URL, MOONDRAFT_STATE_PREFIX: isolation.statePrefix };
    [a, b] = await Promise.all([startServerProcess(processEnv), startServerProcess(processEnv)]);
  }, 90_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await seed?.close();
    await dropSchema(isolation.pgSchema);
    rmSync(dataDir, { recursive: true, force: true });
  }, 30_000);

  async function call(server: ServerProcess, method: string, route: string, headers: Record<string, string> = {}, body?: unknown) {
    const res = await fetch(server.url + route, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, headers: Object.fromEntries(res.headers), json: () => JSON.parse(text) as Record<string, unknown> };
  }

  it('a burst of 300 spread over both processes respects the limit in every second', async () => {
    const session = await sessionFor(seed);
    // Warm both processes (JIT, connection pools) on another account.
    const warm = await sessionFor(seed);
    await Promise.all([call(a, 'GET', '/api/v1/account', warm.headers), call(b, 'GET', '/api/v1/account', warm.headers)]);
    const v = await expectBurstRespectsLimit({
      count: 300,
      // As fast as the client can go with a few requests in flight per process: more would only
      // queue inside the servers and blur the decision times the check relies on.
      concurrency: 6,
      limit: 25,
      now: Date.now,
      send: (i) => call(i % 2 === 0 ? a : b, 'GET', '/api/v1/account', session.headers),
    });
    expect(v.accepted).toBeGreaterThanOrEqual(24);
  });

  it('300 requests on one API key to market data, spread over both processes: at most 100 in any second', async () => {
    const owner = await sessionFor(seed);
    const created = await seed.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'bot', scopes: ['market:read'] } });
    expect(created.statusCode).toBe(201);
    const key = { 'x-api-key': created.json().apiKey as string };
    const v = await expectBurstRespectsLimit({
      count: 300,
      concurrency: 6,
      limit: 100,
      now: Date.now,
      send: (i) => call(i % 2 === 0 ? a : b, 'GET', '/api/v1/market/markets', key),
    });
    expect(v.refused).toBeGreaterThan(0);
  });

  it('an IP block made on one process refuses the address on the other, and lifting it works everywhere', async () => {
    const admin = await sessionFor(seed, { role: 'admin' });
    const from = { 'x-forwarded-for': '203.0.113.77' };
    expect((await call(b, 'GET', '/api/v1/time', from)).status).toBe(200);
    const made = await call(a, 'POST', '/api/v1/admin/ip-blocks', admin.headers, { target: '203.0.113.77', reason: 'test' });
    expect(made.status).toBe(201);
    await vi.waitFor(async () => expect((await call(b, 'GET', '/api/v1/time', from)).status).toBe(403), { timeout: 3000, interval: 20 });
    const refused = await call(b, 'GET', '/api/v1/time', from);
    expect(refused.json().code).toBe('ip_blocked');
    expect((await call(b, 'GET', '/api/v1/time', { 'x-forwarded-for': '203.0.113.78' })).status).toBe(200);

    expect((await call(b, 'DELETE', '/api/v1/admin/ip-blocks?target=203.0.113.77', admin.headers)).status).toBe(204);
    await vi.waitFor(async () => expect((await call(a, 'GET', '/api/v1/time', from)).status).toBe(200), { timeout: 3000, interval: 20 });
  });

  it('failed authentications spread over both processes add up to one automatic block, enforced by both', async () => {
    const from = { 'x-forwarded-for': '203.0.113.88', authorization: 'Bearer aaa.bbb.ccc' };
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await call(i % 2 === 0 ? a : b, 'GET', '/api/v1/account', from)).status);
    expect(statuses.slice(0, 19).every((s) => s === 401)).toBe(true);
    await vi.waitFor(
      async () => {
        for (const p of [a, b]) expect((await call(p, 'GET', '/api/v1/time', { 'x-forwarded-for': '203.0.113.88' })).status).toBe(403);
      },
      { timeout: 3000, interval: 20 },
    );
  });

  it('a partner limit set on one process applies on the other at once (cached copy invalidated)', async () => {
    const admin = await sessionFor(seed, { role: 'admin' });
    const partner = await sessionFor(seed);
    expect((await call(b, 'GET', '/api/v1/account', partner.headers)).headers['ratelimit-policy']).toBe('"account";q=25;w=1'); // b caches the default
    const put = await call(a, 'PUT', `/api/v1/admin/accounts/${partner.account.wallet}/limits`, admin.headers, { account: 60 });
    expect(put.status).toBe(200);
    expect(put.json()).toMatchObject({ limits: { account: 60, market: 100 }, overrides: { account: 60 } });
    await vi.waitFor(async () => expect((await call(b, 'GET', '/api/v1/account', partner.headers)).headers['ratelimit-policy']).toBe('"account";q=60;w=1'), { timeout: 2000, interval: 20 });
  });
});
