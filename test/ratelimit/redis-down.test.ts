import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { buildServer } from '../../src/http/server.js';
import type { App } from '../../src/http/types.js';
import type { Principal } from '../../src/security/principal.js';
import { createServices, type Services } from '../../src/services.js';
import { RedisState } from '../../src/state/redis.js';
import { REDIS_URL, serviceAvailable } from '../support/services.js';
import { RedisProxy } from './redis-proxy.js';

const redisUp = await serviceAvailable('redis');

/**
 * Redis unavailable: trading, account and token requests fail closed with 503 at once (never
 * queued); market data is limited by each process on its own; all recovers by itself.
 *
 * The API-key feature is built in parallel; these servers accept `X-API-Key: test-key` through
 * a stand-in authenticator so that requests reach the rate-limit stage without touching shared
 * state on the way (session tokens consult it for revocation and would answer 503 earlier).
 */
const KEY_PRINCIPAL: Principal = { kind: 'apiKey', accountId: 'acc_probe', wallet: '0x0', role: 'trader', keyId: 'key_probe', scopes: ['market:read', 'orders:write', 'account:read'], signed: true };

async function serverOn(state: RedisState): Promise<{ app: App; services: Services; close(): Promise<void> }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-rd-'));
  const services = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }), { sqliteFile: ':memory:', processMetrics: false, state });
  services.apiKeyAuthenticator = { authenticate: async () => KEY_PRINCIPAL };
  const app = await buildServer(services);
  app.get('/api/v1/market/probe', { config: { permission: 'market:read' } }, async () => ({ ok: true }));
  app.post('/api/v1/trading/probe', { config: { permission: 'orders:write' } }, async () => ({ ok: true }));
  app.post('/api/v1/tokens/probe', { config: { permission: 'tokens:write' } }, async () => ({ ok: true }));
  await app.ready();
  return {
    app,
    services,
    async close() {
      await app.close();
      await services.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const key = { 'x-api-key': 'test-key' };

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

describe('Redis unreachable from the start (dead port)', () => {
  let server: Awaited<ReturnType<typeof serverOn>>;
  beforeAll(async () => {
    server = await serverOn(new RedisState({ url: 'redis://127.0.0.1:1', prefix: 't:dead:' }));
  });
  afterAll(() => server.close());

  it('trading and account requests answer 503 service_unavailable at once', async () => {
    for (const [method, url] of [['POST', '/api/v1/trading/probe'], ['GET', '/api/v1/account']] as const) {
      const { value: res, ms } = await timed(() => server.app.inject({ method, url, headers: key, ...(method === 'POST' ? { payload: {} } : {}) }));
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toMatch(/problem\+json/);
      expect(res.json().code).toBe('service_unavailable');
      expect(res.headers['retry-after']).toBe('1');
      expect(ms).toBeLessThan(1000); // the contract: within one second, never queued
    }
  });

  it('a request without credentials is still 401 unauthenticated, not 503: nothing it could do needs the limiter', async () => {
    for (const [method, url] of [['POST', '/api/v1/trading/probe'], ['GET', '/api/v1/account']] as const) {
      const res = await server.app.inject({ method, url, remoteAddress: '198.51.100.9', ...(method === 'POST' ? { payload: {} } : {}) });
      expect(res.statusCode).toBe(401);
      expect(res.json().code).toBe('unauthenticated');
    }
  });

  it('a signed request the permission matrix refuses gets its refusal, not a 503 it would retry in vain', async () => {
    const res = await server.app.inject({ method: 'POST', url: '/api/v1/tokens/probe', headers: key, payload: {} });
    expect(res.statusCode).toBe(403);
    expect(res.json().code).toBe('insufficient_scope');
  });

  it('market data is limited per process, exactly, on the local limiter', async () => {
    const statuses: number[] = [];
    let last: Record<string, unknown> = {};
    for (let i = 0; i < 105; i++) {
      const res = await server.app.inject({ method: 'GET', url: '/api/v1/market/probe', headers: key });
      statuses.push(res.statusCode);
      if (i === 0) expect(res.headers['ratelimit']).toBe('"market";r=99;t=1');
      last = res.headers;
    }
    expect(statuses.filter((s) => s === 200).length).toBe(100);
    expect(statuses.slice(100)).toEqual([429, 429, 429, 429, 429]);
    expect(last['ratelimit-policy']).toBe('"market";q=100;w=1');
    const metrics = await server.services.metrics.text();
    expect(metrics).toMatch(/moondraft_ratelimit_local_fallback_total\{category="market"\} 10[0-9]/);
    expect(metrics).toMatch(/moondraft_ratelimit_decisions_total\{category="trading",outcome="unavailable"\} [1-9]/);
  });
});

describe.runIf(redisUp)('Redis taken away and brought back (proxy in front of the real Redis)', () => {
  const proxy = new RedisProxy({ host: new URL(REDIS_URL).hostname, port: Number(new URL(REDIS_URL).port || 6379) });
  let state: RedisState;
  let server: Awaited<ReturnType<typeof serverOn>>;
  beforeAll(async () => {
    await proxy.start();
    state = new RedisState({ url: proxy.url, prefix: `t:rd:${Date.now()}:` });
    await state.whenReady();
    server = await serverOn(state);
  });
  afterAll(async () => {
    await server.close();
    await proxy.stop();
  });

  const trade = () => server.app.inject({ method: 'POST', url: '/api/v1/trading/probe', headers: key, payload: {} });
  const market = () => server.app.inject({ method: 'GET', url: '/api/v1/market/probe', headers: key });

  it('fails closed while Redis is gone, falls back for market data, and recovers by itself', async () => {
    expect((await trade()).statusCode).toBe(200);

    await proxy.stop();
    const down = await timed(trade);
    expect(down.value.statusCode).toBe(503);
    expect(down.ms).toBeLessThan(1000);
    expect((await market()).statusCode).toBe(200);

    await proxy.start(); // same port
    await vi.waitFor(async () => expect((await trade()).statusCode).toBe(200), { timeout: 5000, interval: 50 });
    const res = await market();
    expect(res.statusCode).toBe(200);
    // Back on the shared limiter: the fallback counter no longer moves.
    const before = await server.services.metrics.text();
    await market();
    expect(await server.services.metrics.text()).toContain(before.match(/moondraft_ratelimit_local_fallback_total\{category="market"\} \d+/)![0]);
  });

  it('a Redis that hangs costs at most the command deadline: 503 for trading, fallback for market, then recovery', async () => {
    expect((await trade()).statusCode).toBe(200);
    proxy.freeze();
    try {
      const hung = await timed(trade);
      expect(hung.value.statusCode).toBe(503);
      expect(hung.ms).toBeLessThan(1000);
      const m = await timed(market);
      expect(m.value.statusCode).toBe(200);
      expect(m.ms).toBeLessThan(1000);
    } finally {
      proxy.thaw();
    }
    await vi.waitFor(async () => expect((await trade()).statusCode).toBe(200), { timeout: 5000, interval: 50 });
  });
});
