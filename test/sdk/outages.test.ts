/**
 * The SDK against a real scale-out server whose PostgreSQL (behind a TCP proxy) goes away and comes
 * back, and whose Redis loses what it held: 503 `service_unavailable` (Retry-After: 1) waited out
 * with jitter and retried only where that is safe, a session that survives a refresh refused by the
 * outage, and signed requests that survive the replay memory's loss.
 */
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MoondraftClient, MoondraftError, type RetryEvent } from '@moondraft/client';
import { RedisProxy as TcpProxy } from '../ratelimit/redis-proxy.js';
import { emptySharedState } from '../support/server.js';
import { PG_URL, serviceAvailable } from '../support/services.js';
import { fund, listMoon, USDC } from '../support/trading.js';
import { raiseLimits, startRealServer, type RealServer } from './support.js';

const available = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

describe.runIf(available)('the SDK through store outages and a Redis that lost its contents (scale-out)', () => {
  const pg = new URL(PG_URL);
  const proxy = new TcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
  let server: RealServer;

  beforeAll(async () => {
    await proxy.start();
    const url = new URL(PG_URL);
    url.port = String(proxy.port);
    server = await startRealServer({ backend: 'scaleout', env: { DATABASE_URL: url.toString() } });
    await listMoon(server.services.trading);
  });
  afterAll(async () => {
    await proxy.start().catch(() => {});
    await server?.close();
    await proxy.stop();
  });

  async function signedIn(options: ConstructorParameters<typeof MoondraftClient>[0] = {}) {
    const client = new MoondraftClient({ baseUrl: server.url, env: false, ...options });
    await client.signIn(privateKeyToAccount(generatePrivateKey()));
    const me = await client.account.get();
    await raiseLimits(server, me.id);
    return { client, me };
  }

  it('a refresh the outage refused (503: nothing was done) keeps its refresh token: the session renews once the database is back', async () => {
    const { client } = await signedIn();
    const before = client.session!;
    await proxy.stop();
    try {
      const error = await client.auth.refresh().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MoondraftError);
      expect({ status: (error as MoondraftError).status, code: (error as MoondraftError).code }).toEqual({ status: 503, code: 'service_unavailable' });
    } finally {
      await proxy.start();
    }
    // The server rolled the rotation back: the token it holds is still the one to present.
    expect(client.session?.refreshToken).toBe(before.refreshToken);
    const renewed = await client.auth.refresh();
    expect(renewed.refreshToken).not.toBe(before.refreshToken);
    expect((await client.account.get()).id).toBeTruthy();
  });

  it('a 503 with Retry-After: 1 is waited out with jitter (never all clients at the same instant), at most maxRetries times, then thrown with code, status and request id', async () => {
    const { client: owner } = await signedIn();
    const retries: RetryEvent[] = [];
    const client = new MoondraftClient({ baseUrl: server.url, env: false, session: owner.session, hooks: { onRetry: (e) => retries.push(e) } });
    await proxy.stop();
    let error: unknown;
    try {
      error = await client.account.balances().catch((e: unknown) => e);
    } finally {
      await proxy.start();
    }
    expect(error).toBeInstanceOf(MoondraftError);
    const e = error as MoondraftError;
    expect({ status: e.status, code: e.code, retryAfterMs: e.retryAfterMs, attempts: e.attempts }).toEqual({ status: 503, code: 'service_unavailable', retryAfterMs: 1000, attempts: 4 });
    expect(e.requestId).toMatch(/\S/);
    expect(retries.map((r) => r.reason)).toEqual(['server_error', 'server_error', 'server_error']);
    for (const r of retries) {
      expect(r.delayMs).toBeGreaterThanOrEqual(1000);
      expect(r.delayMs).toBeLessThanOrEqual(1000 + 8000);
    }
    // Jittered: not every wait is exactly the Retry-After.
    expect(retries.some((r) => r.delayMs > 1000)).toBe(true);
  });

  it('an order placed while the database is away is retried with its clientOrderId and placed once when it is back', async () => {
    const { client, me } = await signedIn();
    await fund(server.services.trading, me.id, 'USDC', USDC(100));
    const key = await client.keys.create({ label: 'bot', scopes: ['orders:read', 'orders:write', 'account:read'] });
    const retries: RetryEvent[] = [];
    const bot = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: key.apiKey, apiSecret: key.apiSecret!, hooks: { onRetry: (e) => retries.push(e) } });
    await bot.account.get(); // the clock measured, the key cached
    await proxy.stop();
    const placing = bot.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '2', clientOrderId: 'sdk-outage-1' }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 300));
    await proxy.start();
    const order = await placing;
    expect(order).not.toBeInstanceOf(Error);
    expect(retries.length).toBeGreaterThan(0);
    const { orders } = await bot.trading.orders();
    expect(orders.filter((o) => o.clientOrderId === 'sdk-outage-1')).toHaveLength(1);
  });

  it('an order and a withdrawal whose outcome is unknown (no answer in time) name their clientOrderId / clientWithdrawalId, generated ones included: asked again with it, the original comes back, never a second', async () => {
    const { client: owner, me } = await signedIn();
    await fund(server.services.trading, me.id, 'USDC', USDC(100));
    const key = await owner.keys.create({ label: 'bot', scopes: ['orders:read', 'orders:write', 'account:read'] });
    const impatient = { timeoutMs: 500, retry: { maxRetries: 1 } };
    const bot = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: key.apiKey, apiSecret: key.apiSecret!, ...impatient });
    const person = new MoondraftClient({ baseUrl: server.url, env: false, session: owner.session, ...impatient });
    await bot.account.get();
    await person.account.get();

    const order = { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '2' } as const;
    const withdrawal = { asset: 'USDC', amount: '5', address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed' };
    proxy.freeze(); // the database stops answering: the calls time out, their outcome unknown
    let orderError: unknown;
    let withdrawalError: unknown;
    try {
      orderError = await bot.trading.placeOrder(order).catch((e: unknown) => e);
      withdrawalError = await person.withdrawals.create(withdrawal).catch((e: unknown) => e);
    } finally {
      proxy.thaw();
    }
    expect(orderError).toBeInstanceOf(MoondraftError);
    expect(withdrawalError).toBeInstanceOf(MoondraftError);
    const lostOrder = orderError as MoondraftError;
    const lostWithdrawal = withdrawalError as MoondraftError;
    expect(lostOrder.code).toBe('timeout');
    expect(lostWithdrawal.code).toBe('timeout');
    expect(lostOrder.clientOrderId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(lostWithdrawal.clientWithdrawalId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

    // Asked again with the id the error names: the original (taken once the database answered), or
    // the first one if it never was; in both cases exactly one.
    const patient = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: key.apiKey, apiSecret: key.apiSecret! });
    const placed = await patient.trading.placeOrder({ ...order, clientOrderId: lostOrder.clientOrderId! });
    const taken = await owner.withdrawals.create({ ...withdrawal, clientWithdrawalId: lostWithdrawal.clientWithdrawalId! });
    expect((await patient.trading.orders()).orders.map((o) => o.id)).toEqual([placed.id]);
    expect((await owner.withdrawals.list()).map((w) => w.id)).toEqual([taken.id]);
  });

  it('signed requests go on after Redis restarted empty: a request the lost memory refuses (timestamp_out_of_window) is signed again a moment later and accepted', async () => {
    const { client } = await signedIn();
    const key = await client.keys.create({ label: 'bot', scopes: ['account:read', 'tokens:write', 'market:read'] });
    const retries: RetryEvent[] = [];
    const bot = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: key.apiKey, apiSecret: key.apiSecret!, hooks: { onRetry: (e) => retries.push(e) } });
    await bot.account.get();
    await emptySharedState({ statePrefix: server.config.statePrefix });
    expect((await bot.account.get()).id).toBeTruthy();
    expect(retries.map((r) => [r.reason, r.error.code])).toEqual([['clock_skew', 'timestamp_out_of_window']]);
    const mine = await bot.tokens.list({ mine: true });
    expect(Array.isArray(mine)).toBe(true);
  });
});
