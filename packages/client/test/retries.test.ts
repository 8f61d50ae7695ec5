import { afterEach, describe, expect, it } from 'vitest';
import { MoondraftClient, MoondraftError, newClientOrderId, type RetryEvent } from '../src/index.js';
import { hmacValid, recordingSleep, sendJson, sendProblem, startWireServer, type WireHandler, type WireRequest, type WireServer } from './support/wire-server.js';

const SECRET = 'mds_retry_secret';
let server: WireServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Answers /api/v1/time itself; every other request goes to `handler` with its 1-based number. */
async function serve(handler: (req: WireRequest, n: number, res: Parameters<WireHandler>[1]) => void): Promise<WireServer> {
  let n = 0;
  server = await startWireServer((req, res) => {
    if (req.target === '/api/v1/time') return sendJson(res, 200, { serverTime: Date.now() }, { serverTime: Date.now() });
    handler(req, ++n, res);
  });
  return server;
}

function clientFor(s: WireServer, extra: Partial<ConstructorParameters<typeof MoondraftClient>[0]> = {}) {
  const { sleep, delays } = recordingSleep();
  const retries: RetryEvent[] = [];
  const client = new MoondraftClient({
    baseUrl: s.url,
    env: false,
    apiKey: 'md_test_retry',
    apiSecret: SECRET,
    sleep,
    random: () => 0.5,
    hooks: { onRetry: (e) => retries.push(e) },
    ...extra,
  });
  return { client, delays, retries };
}

const apiRequests = (s: WireServer) => s.requests.filter((r) => r.target !== '/api/v1/time');

describe('429 Too Many Requests', () => {
  it('waits for Retry-After plus jitter, then succeeds with a freshly signed request', async () => {
    const s = await serve((_req, n, res) => {
      if (n === 1) return sendProblem(res, 429, 'rate_limited', 'Too many requests', { headers: { 'Retry-After': '1', RateLimit: '"trading";r=0;t=1' } });
      sendJson(res, 200, { orders: [{ id: 'ord_1' }], next: null });
    });
    const { client, delays, retries } = clientFor(s);
    await expect(client.trading.orders()).resolves.toEqual({ orders: [{ id: 'ord_1' }], next: null });

    const [first, second] = apiRequests(s);
    expect(apiRequests(s)).toHaveLength(2);
    // Retry-After 1 s, plus half of the 250 ms jitter (random() = 0.5).
    expect(delays).toEqual([1125]);
    expect(retries.map((r) => [r.reason, r.attempt, r.error.code])).toEqual([['rate_limited', 1, 'rate_limited']]);
    expect(hmacValid(SECRET, first!)).toBe(true);
    expect(hmacValid(SECRET, second!)).toBe(true);
    expect(second!.headers['x-api-timestamp']).not.toBe(first!.headers['x-api-timestamp']);
    expect(second!.headers['x-api-signature']).not.toBe(first!.headers['x-api-signature']);
  });

  it('retries even a non-idempotent request (the limiter refused it before anything ran)', async () => {
    const s = await serve((_req, n, res) => {
      if (n === 1) return sendProblem(res, 429, 'rate_limited', 'Too many requests', { headers: { 'Retry-After': '2' } });
      sendJson(res, 201, { id: 'wd_1' });
    });
    const { client, delays } = clientFor(s, { random: () => 0 });
    await expect(client.withdrawals.create({ asset: 'USDC', amount: '250.00', address: '0x52908400098527886E0F7030069857D2E4169EE7' })).resolves.toEqual({ id: 'wd_1' });
    expect(delays).toEqual([2000]);
    expect(apiRequests(s)).toHaveLength(2);
  });

  it('does not wait out a Retry-After beyond maxRetryAfterMs: it throws with retryAfterMs', async () => {
    const s = await serve((_req, _n, res) => sendProblem(res, 429, 'temporarily_suspended', 'Suspended for abuse', { headers: { 'Retry-After': '300' } }));
    const { client, delays } = clientFor(s);
    const error = await client.market.tickers().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MoondraftError);
    expect(error).toMatchObject({ code: 'temporarily_suspended', status: 429, retryAfterMs: 300_000, attempts: 1 });
    expect(delays).toEqual([]);
    expect(apiRequests(s)).toHaveLength(1);
  });

  it('reports a Retry-After past the longest timer as that longest timer, never Infinity (setTimeout would fire at once)', async () => {
    let value = '9'.repeat(400);
    const s = await serve((_req, _n, res) => sendProblem(res, 429, 'temporarily_suspended', 'Suspended for abuse', { headers: { 'Retry-After': value } }));
    const { client } = clientFor(s);
    await expect(client.market.tickers()).rejects.toMatchObject({ code: 'temporarily_suspended', retryAfterMs: 2 ** 31 - 1 });
    value = 'Fri, 31 Dec 9999 23:59:59 GMT';
    await expect(client.market.tickers()).rejects.toMatchObject({ code: 'temporarily_suspended', retryAfterMs: 2 ** 31 - 1 });
    value = '2592000'; // 30 days
    await expect(client.market.tickers()).rejects.toMatchObject({ retryAfterMs: 2 ** 31 - 1 });
  });

  it('never waits out a Retry-After past the longest timer, even with maxRetryAfterMs at that timer: it would retry sooner than asked (or at once, jitter overflowing setTimeout)', async () => {
    const s = await serve((_req, n, res) =>
      n % 2 === 1
        ? sendProblem(res, 429, 'temporarily_suspended', 'Suspended for abuse', { headers: { 'Retry-After': '2592000' } })
        : sendProblem(res, 503, 'service_unavailable', 'Down for maintenance', { headers: { 'Retry-After': '2592000' } }),
    );
    const { client, delays } = clientFor(s, { retry: { maxRetryAfterMs: 2 ** 31 - 1 } });
    await expect(client.market.tickers()).rejects.toMatchObject({ code: 'temporarily_suspended', attempts: 1 });
    await expect(client.market.tickers()).rejects.toMatchObject({ code: 'service_unavailable', attempts: 1 });
    expect(delays).toEqual([]);
    expect(apiRequests(s)).toHaveLength(2);
  });

  it('reads a Retry-After that is neither delta-seconds nor an HTTP date as absent (backoff), never as a date in 2001', async () => {
    // Date.parse('1.5') is 5 Jan 2001 and Date.parse('5, 5') is May 2001: read leniently, both meant "retry now".
    for (const value of ['1.5', '5, 5', '-1']) {
      const s = await serve((_req, n, res) => {
        if (n === 1) return sendProblem(res, 429, 'rate_limited', 'Too many requests', { headers: { 'Retry-After': value } });
        sendJson(res, 200, { tickers: [] });
      });
      const { client, delays } = clientFor(s, { random: () => 0 });
      await client.market.tickers();
      // The first backoff step (250 ms, equal jitter at 0 → 125 ms), as with no Retry-After at all.
      expect([value, delays]).toEqual([value, [125]]);
      await server?.close();
      server = undefined;
    }
  });

  it('reads an asctime Retry-After as GMT (RFC 9110), whatever the local time zone', async () => {
    const tz = process.env.TZ;
    process.env.TZ = 'Asia/Tokyo';
    try {
      const s = await serve((_req, n, res) => {
        if (n === 1) {
          // asctime-date: "Sun Nov  6 08:49:37 1994", always GMT.
          const d = new Date(Date.now() + 10_000);
          const [day, month, date, time, year] = [d.toUTCString().slice(0, 3), d.toUTCString().slice(8, 11), d.getUTCDate(), d.toISOString().slice(11, 19), d.getUTCFullYear()];
          return sendProblem(res, 429, 'rate_limited', 'Too many requests', { headers: { 'Retry-After': `${day} ${month} ${String(date).padStart(2, ' ')} ${time} ${year}` } });
        }
        sendJson(res, 200, { tickers: [] });
      });
      const { client, delays } = clientFor(s, { random: () => 0 });
      await client.market.tickers();
      // About 10 s; read as Tokyo time it would be 9 hours in the past (retry at once).
      expect(delays).toHaveLength(1);
      expect(delays[0]).toBeGreaterThan(8_000);
      expect(delays[0]).toBeLessThanOrEqual(11_000);
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  it('gives up after maxRetries', async () => {
    const s = await serve((_req, _n, res) => sendProblem(res, 429, 'rate_limited', 'Too many requests', { headers: { 'Retry-After': '1' } }));
    const { client, delays } = clientFor(s, { retry: { maxRetries: 2 } });
    await expect(client.market.tickers()).rejects.toMatchObject({ code: 'rate_limited', attempts: 3 });
    expect(delays).toHaveLength(2);
    expect(apiRequests(s)).toHaveLength(3);
  });
});

describe('5xx and network failures', () => {
  it('retries an order placement after a 503 with the same clientOrderId, re-signed', async () => {
    const s = await serve((req, n, res) => {
      if (n === 1) return sendProblem(res, 503, 'service_unavailable', 'A shared service is unavailable', { headers: { 'Retry-After': '1' } });
      sendJson(res, 201, { id: 'ord_9', ...JSON.parse(req.body.toString('utf8')) });
    });
    const { client, delays, retries } = clientFor(s);
    const order = await client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'limit', price: '0.0125', quantity: '1000' });

    const [first, second] = apiRequests(s);
    expect(apiRequests(s)).toHaveLength(2);
    const firstBody = JSON.parse(first!.body.toString('utf8'));
    expect(firstBody.clientOrderId).toMatch(/^[0-9a-f-]{36}$/);
    expect(second!.body.equals(first!.body)).toBe(true); // the same bytes, so the same clientOrderId
    expect(order.clientOrderId).toBe(firstBody.clientOrderId);
    expect(hmacValid(SECRET, first!) && hmacValid(SECRET, second!)).toBe(true);
    expect(second!.headers['x-api-timestamp']).not.toBe(first!.headers['x-api-timestamp']);
    // Backoff (250 ms with equal jitter at 0.5 → 188) but no less than the server's Retry-After,
    // plus jitter (0.5 of 250 ms), so clients refused together do not all come back together.
    expect(delays).toEqual([1125]);
    expect(retries[0]).toMatchObject({ reason: 'server_error', attempt: 1 });
  });

  it('retries a withdrawal request after a 503 or a dropped connection with the same clientWithdrawalId, so it is never taken twice', async () => {
    const s = await serve((req, n, res) => {
      if (n === 1) return sendProblem(res, 503, 'service_unavailable', 'A shared service is unavailable');
      if (n === 2) return void res.socket?.destroy();
      sendJson(res, 200, { id: 'wdr_1', ...JSON.parse(req.body.toString('utf8')) });
    });
    const { client } = clientFor(s);
    const w = await client.withdrawals.create({ asset: 'USDC', amount: '250.00', address: '0x52908400098527886E0F7030069857D2E4169EE7' });
    const sent = apiRequests(s);
    expect(sent).toHaveLength(3);
    const id = JSON.parse(sent[0]!.body.toString('utf8')).clientWithdrawalId;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    for (const r of sent) expect(r.body.equals(sent[0]!.body)).toBe(true);
    expect(w.clientWithdrawalId).toBe(id);
    // A caller's own id is kept; each new request gets a new one.
    s.requests.length = 0;
    await client.withdrawals.create({ asset: 'USDC', amount: '1', address: '0x52908400098527886E0F7030069857D2E4169EE7', clientWithdrawalId: 'mine-1' });
    await client.withdrawals.create({ asset: 'USDC', amount: '1', address: '0x52908400098527886E0F7030069857D2E4169EE7' });
    await client.withdrawals.create({ asset: 'USDC', amount: '1', address: '0x52908400098527886E0F7030069857D2E4169EE7' });
    const ids = apiRequests(s).map((r) => JSON.parse(r.body.toString('utf8')).clientWithdrawalId);
    expect(ids[0]).toBe('mine-1');
    expect(new Set(ids).size).toBe(3);
  });

  it('closes a position with a generated clientOrderId, so a retry after a 503 cannot sell twice', async () => {
    const s = await serve((req, n, res) => {
      if (n === 1) return sendProblem(res, 503, 'service_unavailable', 'A shared service is unavailable', { headers: { 'Retry-After': '1' } });
      sendJson(res, 201, { id: 'ord_10', ...JSON.parse(req.body.toString('utf8')) });
    });
    const { client, retries } = clientFor(s);
    await client.trading.closePosition('MOON');
    const [first, second] = apiRequests(s);
    expect(apiRequests(s)).toHaveLength(2);
    expect(first!.target).toBe('/api/v1/trading/positions/MOON/close');
    expect(JSON.parse(first!.body.toString('utf8')).clientOrderId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(second!.body.equals(first!.body)).toBe(true);
    expect(retries[0]).toMatchObject({ reason: 'server_error', attempt: 1 });
    // The caller's own id is kept.
    await client.trading.closePosition('MOON', { clientOrderId: 'close-1' });
    expect(JSON.parse(apiRequests(s)[2]!.body.toString('utf8')).clientOrderId).toBe('close-1');
  });

  it('names the clientOrderId / clientWithdrawalId a failed call carried (generated or given), so the caller can ask again with it; other calls name none', async () => {
    const s = await serve((_req, _n, res) => sendProblem(res, 500, 'internal_error', 'outcome unknown'));
    const { client } = clientFor(s, { retry: { maxRetries: 1 } });
    const sentId = (i: number) => JSON.parse(apiRequests(s)[i]!.body.toString('utf8'));
    const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as MoondraftError);

    const placed = await failure(client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' }));
    expect(placed).toMatchObject({ code: 'internal_error', attempts: 2, clientOrderId: sentId(0).clientOrderId, clientWithdrawalId: undefined });
    expect(sentId(1).clientOrderId).toBe(sentId(0).clientOrderId);
    const closed = await failure(client.trading.closePosition('MOON', { clientOrderId: 'close-2' }));
    expect(closed).toMatchObject({ code: 'internal_error', clientOrderId: 'close-2' });
    const withdrawn = await failure(client.withdrawals.create({ asset: 'USDC', amount: '1', address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed' }));
    expect(withdrawn).toMatchObject({ code: 'internal_error', clientOrderId: undefined, clientWithdrawalId: sentId(4).clientWithdrawalId });
    expect(withdrawn!.message).toContain('POST /api/v1/account/withdrawals → 500 internal_error');
    const read = await failure(client.account.balances());
    expect(read).toMatchObject({ code: 'internal_error', clientOrderId: undefined, clientWithdrawalId: undefined });
  });

  it('keeps a clientOrderId the caller gave, and generates a different one for each new order', async () => {
    const s = await serve((req, _n, res) => sendJson(res, 201, JSON.parse(req.body.toString('utf8'))));
    const { client } = clientFor(s);
    await client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1', clientOrderId: 'mine-1' });
    await client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' });
    await client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' });
    const ids = apiRequests(s).map((r) => JSON.parse(r.body.toString('utf8')).clientOrderId);
    expect(ids[0]).toBe('mine-1');
    expect(new Set(ids).size).toBe(3);
  });

  it('generates UUIDv7 clientOrderIds that sort by creation time', () => {
    const t0 = Date.UTC(2026, 10, 29, 12, 0, 0);
    const ids = [newClientOrderId(t0), newClientOrderId(t0 + 1), newClientOrderId(t0 + 1000), newClientOrderId(t0 + 86_400_000)];
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
    expect(Number.parseInt(ids[0]!.replace(/-/g, '').slice(0, 12), 16)).toBe(t0);
    expect(new Set(Array.from({ length: 1000 }, () => newClientOrderId(t0))).size).toBe(1000); // random past the time
  });

  it('makes clientOrderIds of one millisecond in order, by steps that cannot be guessed', () => {
    const t0 = Date.UTC(2026, 10, 29, 12, 0, 1);
    const made = Array.from({ length: 2000 }, () => newClientOrderId(t0));
    for (const id of made) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...made].sort()).toEqual(made);
    // The 74 random bits: rand_a (12) after the version nibble, rand_b (62) after the variant bits.
    const bits = (id: string) => {
      const h = id.replace(/-/g, '');
      return (BigInt(`0x${h.slice(13, 16)}`) << 62n) | (BigInt(`0x${h.slice(16)}`) & ((1n << 62n) - 1n));
    };
    const steps = made.slice(1).map((id, i) => bits(id) - bits(made[i]!));
    for (const step of steps) expect(step >= 1n && step <= 2n ** 32n).toBe(true);
    expect(new Set(steps).size).toBeGreaterThan(1990);
  });

  it('retries an order placement whose connection dropped, with the same clientOrderId', async () => {
    const s = await serve((req, n, res) => {
      if (n === 1) return void res.socket?.destroy();
      sendJson(res, 201, JSON.parse(req.body.toString('utf8')));
    });
    const { client, retries } = clientFor(s);
    await client.trading.placeOrder({ market: 'MOON-USDC', side: 'sell', type: 'market', quantity: '3' });
    const [first, second] = apiRequests(s);
    expect(apiRequests(s)).toHaveLength(2);
    expect(second!.body.equals(first!.body)).toBe(true);
    expect(retries.map((r) => [r.reason, r.error.code])).toEqual([['network_error', 'network_error']]);
  });

  it('does not retry a 5xx sooner than its Retry-After: one beyond maxRetryAfterMs is thrown at once', async () => {
    // E.g. maintenance: "come back in 10 minutes". Retrying after 30 s (maxRetryAfterMs) would be sooner than asked.
    const s = await serve((_req, _n, res) => sendProblem(res, 503, 'service_unavailable', 'Maintenance', { headers: { 'Retry-After': '600' } }));
    const { client, delays } = clientFor(s);
    await expect(client.account.balances()).rejects.toMatchObject({ code: 'service_unavailable', status: 503, retryAfterMs: 600_000, attempts: 1 });
    expect(delays).toEqual([]);
    expect(apiRequests(s)).toHaveLength(1);
  });

  it('retries GET and DELETE with growing backoff, bounded by maxRetries', async () => {
    const s = await serve((_req, _n, res) => sendProblem(res, 500, 'internal_error', 'An internal error occurred'));
    const { client, delays } = clientFor(s, { retry: { maxRetries: 3, baseDelayMs: 100, maxDelayMs: 300 } });
    await expect(client.account.balances()).rejects.toMatchObject({ code: 'internal_error', status: 500, attempts: 4 });
    // steps 100, 200, 300 (capped); equal jitter at 0.5 → 75 %.
    expect(delays).toEqual([75, 150, 225]);
    expect(apiRequests(s)).toHaveLength(4);

    s.requests.length = 0;
    delays.length = 0;
    await expect(client.trading.cancelOrder('ord_1')).rejects.toMatchObject({ code: 'internal_error' });
    expect(apiRequests(s)).toHaveLength(4);

    // The new read, PUT and DELETE methods of the address book and limits are retried the same way.
    for (const call of [
      () => client.withdrawals.get('wdr_1'),
      () => client.withdrawals.limit(),
      () => client.account.tradingLimit(),
      () => client.market.assets(),
      () => client.withdrawals.addressBook(),
      () => client.withdrawals.setAddressBook(true),
      () => client.withdrawals.removeAddress('wad_1'),
      () => client.trading.cancelAllOrders(),
    ]) {
      s.requests.length = 0;
      await expect(call()).rejects.toMatchObject({ code: 'internal_error', attempts: 4 });
      expect(apiRequests(s)).toHaveLength(4);
    }
  });

  it('does not retry non-idempotent requests on 5xx', async () => {
    const s = await serve((_req, _n, res) => sendProblem(res, 503, 'service_unavailable', 'down'));
    const { client, delays } = clientFor(s);
    await expect(client.tokens.create({ name: 'Moon', symbol: 'MOON', decimals: 6, supply: '1000' })).rejects.toMatchObject({ code: 'service_unavailable' });
    await expect(client.sandbox.faucet({ asset: 'USDC', amount: '100' })).rejects.toMatchObject({ code: 'service_unavailable' });
    await expect(client.withdrawals.cancel('wdr_01J0000000000000000000000A')).rejects.toMatchObject({ code: 'service_unavailable', attempts: 1 });
    await expect(client.withdrawals.saveAddress({ chain: 'evm', address: '0x52908400098527886E0F7030069857D2E4169EE7' })).rejects.toMatchObject({ code: 'service_unavailable', attempts: 1 });
    expect(apiRequests(s)).toHaveLength(4);
    expect(delays).toEqual([]);
  });

  it('does not retry non-idempotent requests whose connection dropped', async () => {
    const s = await serve((_req, _n, res) => void res.socket?.destroy());
    const { client } = clientFor(s);
    const error = await client.tokens.create({ name: 'Moon', symbol: 'MOON', decimals: 6, supply: '1000' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'network_error', status: 0, attempts: 1 });
    expect(apiRequests(s)).toHaveLength(1);
  });

  it('does not retry a 503 that is a business outcome (trading_halted)', async () => {
    const s = await serve((_req, _n, res) => sendProblem(res, 503, 'trading_halted', 'Trading is halted'));
    const { client } = clientFor(s);
    await expect(client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' })).rejects.toMatchObject({ code: 'trading_halted' });
    expect(apiRequests(s)).toHaveLength(1);
  });

  it('never retries 4xx refusals', async () => {
    const s = await serve((_req, _n, res) => sendProblem(res, 422, 'insufficient_funds', 'The available balance is not enough'));
    const { client } = clientFor(s);
    await expect(client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' })).rejects.toMatchObject({ code: 'insufficient_funds' });
    expect(apiRequests(s)).toHaveLength(1);
  });

  it('times out a request that gets no answer and retries it when idempotent', async () => {
    const s = await serve((_req, n, res) => {
      if (n === 1) return; // never answers
      sendJson(res, 200, { ok: true });
    });
    const { client, retries } = clientFor(s, { timeoutMs: 200 });
    await expect(client.account.get()).resolves.toEqual({ ok: true });
    expect(retries.map((r) => r.error.code)).toEqual(['timeout']);
  });

  it('stops when the caller aborts, also while waiting to retry', async () => {
    const s = await serve((_req, _n, res) => sendProblem(res, 503, 'service_unavailable', 'down'));
    const controller = new AbortController();
    const client = new MoondraftClient({
      baseUrl: s.url,
      env: false,
      sleep: async () => controller.abort(new Error('stop')),
    });
    await expect(client.market.markets({ signal: controller.signal })).rejects.toMatchObject({ code: 'aborted' });
    expect(apiRequests(s)).toHaveLength(1);
  });
});

describe('retry options', () => {
  it('refuses waits that setTimeout cannot hold (past 2^31 − 1 ms it fires at once)', () => {
    const make = (retry: Record<string, number>) => () => new MoondraftClient({ baseUrl: 'http://127.0.0.1:1', env: false, retry });
    expect(make({ maxRetryAfterMs: 2 ** 31 })).toThrow(TypeError);
    expect(make({ maxDelayMs: 2 ** 31 })).toThrow(TypeError);
    expect(make({ maxRetries: -1 })).toThrow(TypeError);
    expect(make({ maxRetryAfterMs: 2 ** 31 - 1 })).not.toThrow();
  });
});

describe('timeouts', () => {
  it('refuses a timeoutMs that setTimeout cannot hold (past 2^31 − 1 ms every attempt would time out at once)', async () => {
    const make = (timeoutMs: number) => () => new MoondraftClient({ baseUrl: 'http://127.0.0.1:1', env: false, timeoutMs });
    expect(make(2 ** 31)).toThrow(TypeError);
    expect(make(30 * 24 * 3600_000)).toThrow(TypeError);
    expect(make(2 ** 31 - 1)).not.toThrow();

    // Per call too: a "wait up to a month" must not become "give up after 1 ms".
    const s = await serve((_req, _n, res) => setTimeout(() => sendJson(res, 200, { ok: true }), 30));
    const { client } = clientFor(s);
    await expect(client.account.get({ timeoutMs: 2 ** 31 })).rejects.toThrow(TypeError);
    await expect(client.account.get({ timeoutMs: 0 })).rejects.toThrow(TypeError);
    expect(apiRequests(s)).toHaveLength(0);
    await expect(client.account.get({ timeoutMs: 2 ** 31 - 1 })).resolves.toEqual({ ok: true });
  });
});
