import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { Keyring } from '../../src/security/crypto/keyring.js';
import { ensureKeysetFile } from '../../src/security/identity/signing-keys.js';
import { clearHalt, setHalt } from '../../src/trading/index.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

type Session = Awaited<ReturnType<typeof sessionFor>>;

let server: TestServer;
let admin: Session;
const clock = new ManualClock(Date.UTC(2026, 3, 1, 10, 0, 0));

const req = (method: string, url: string, s?: Session, payload?: unknown) =>
  server.app.inject({ method: method as 'GET', url, ...(s ? { headers: s.headers } : {}), ...(payload !== undefined ? { payload: payload as object } : {}) });

async function trader(usdc = '1000', moon?: string): Promise<Session> {
  const s = await sessionFor(server);
  if (usdc !== '0') expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: usdc })).statusCode).toBe(200);
  if (moon) {
    // MOON is not a faucet asset: fund through the ledger as a token launch would.
    const { fund } = await import('../support/trading.js');
    await fund(server.services.trading, s.account.id, 'MOON', BigInt(Math.round(Number(moon) * 1e6)));
  }
  return s;
}

const order = (s: Session, body: Record<string, unknown>) => req('POST', '/api/v1/trading/orders', s, { market: 'MOON-USDC', type: 'limit', ...body });

beforeAll(async () => {
  // http-thread.test.ts runs this suite again on the order thread, which needs a database file.
  const thread = process.env.MOONDRAFT_TEST_ORDER_THREAD === 'on';
  server = await startTestServer({ clock, ...(thread ? { sqliteFile: true, env: { MOONDRAFT_ORDER_THREAD: 'on' } } : {}) });
  expect(server.services.trading.orders.threaded).toBe(thread);
  admin = await sessionFor(server, { role: 'admin' });
  expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'MOON', name: 'Moon', decimals: 6 })).statusCode).toBe(201);
  const listed = await req('POST', '/api/v1/admin/markets', admin, { base: 'MOON', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1', makerFeeBps: 10, takerFeeBps: 20 });
  expect(listed.statusCode).toBe(201);
  expect(listed.json()).toMatchObject({ symbol: 'MOON-USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1', baseDecimals: 6, quoteDecimals: 6, status: 'active' });
});
afterAll(() => server.close());

describe('market data', () => {
  it('lists markets and assets', async () => {
    const s = await sessionFor(server, { role: 'developer' });
    expect((await req('GET', '/api/v1/market/markets', s)).json().markets.map((m: { symbol: string }) => m.symbol)).toContain('MOON-USDC');
    expect((await req('GET', '/api/v1/market/assets', s)).json().assets).toEqual(expect.arrayContaining([expect.objectContaining({ symbol: 'USDC', decimals: 6, faucet: true })]));
  });

  it('serves depth, trades, tickers and candles from committed trades', async () => {
    const maker = await trader('0', '10');
    const taker = await trader('100');
    expect((await order(maker, { side: 'sell', price: '2.5', quantity: '1' })).statusCode).toBe(201);
    expect((await order(maker, { side: 'sell', price: '2.6', quantity: '2' })).statusCode).toBe(201);
    expect((await order(maker, { side: 'sell', price: '2.6', quantity: '0.5' })).statusCode).toBe(201);
    const bid = await order(taker, { side: 'buy', price: '2.4', quantity: '1' });
    expect(bid.statusCode).toBe(201);

    const book = await req('GET', '/api/v1/market/orderbook/MOON-USDC?depth=1', taker);
    expect(book.json()).toMatchObject({ market: 'MOON-USDC', bids: [{ price: '2.4', quantity: '1', orders: 1 }], asks: [{ price: '2.5', quantity: '1', orders: 1 }] });
    const full = (await req('GET', '/api/v1/market/orderbook/MOON-USDC', taker)).json();
    expect(full.asks).toEqual([{ price: '2.5', quantity: '1', orders: 1 }, { price: '2.6', quantity: '2.5', orders: 2 }]);

    const take = await order(taker, { side: 'buy', type: 'market', quantity: '1.5' });
    expect(take.statusCode).toBe(201);
    expect(take.json()).toMatchObject({ status: 'filled', filledQuantity: '1.5', averagePrice: '2.533333', notional: '3.8', fees: '0.0076', fills: [{ price: '2.5', quantity: '1' }, { price: '2.6', quantity: '0.5' }] });

    const trades = (await req('GET', '/api/v1/market/trades/MOON-USDC?limit=10', taker)).json();
    expect(trades.trades.map((t: { price: string; quantity: string; side: string }) => [t.price, t.quantity, t.side])).toEqual([
      ['2.6', '0.5', 'buy'],
      ['2.5', '1', 'buy'],
    ]);
    const ticker = (await req('GET', '/api/v1/market/tickers', taker)).json().tickers.find((t: { market: string }) => t.market === 'MOON-USDC');
    expect(ticker).toMatchObject({ last: '2.6', open24h: '2.5', high24h: '2.6', low24h: '2.5', change24h: '0.1', changePercent24h: '4', volume24h: '1.5', quoteVolume24h: '3.8', trades24h: 2, bestBid: '2.4', bestAsk: '2.6' });
    for (const interval of ['1m', '5m', '1h', '1d']) {
      const candles = (await req('GET', `/api/v1/market/candles/MOON-USDC?interval=${interval}`, taker)).json();
      expect(candles).toMatchObject({ interval, candles: [{ open: '2.5', high: '2.6', low: '2.5', close: '2.6', volume: '1.5', quoteVolume: '3.8', trades: 2 }] });
    }
    // A later trade in the next minute starts a new 1m candle but extends the 1h one.
    clock.advance(60_000);
    await order(taker, { side: 'buy', type: 'market', quantity: '0.5' });
    const m1 = (await req('GET', '/api/v1/market/candles/MOON-USDC?interval=1m', taker)).json().candles;
    const h1 = (await req('GET', '/api/v1/market/candles/MOON-USDC?interval=1h', taker)).json().candles;
    expect(m1).toHaveLength(2);
    expect(h1).toHaveLength(1);
    expect(h1[0]).toMatchObject({ volume: '2', trades: 3 });
    await req('DELETE', '/api/v1/trading/orders', maker);
    await req('DELETE', '/api/v1/trading/orders', taker);
  });

  it('answers 404 for an unknown market and 400 for a malformed one or bad parameters', async () => {
    const s = await sessionFor(server);
    expect((await req('GET', '/api/v1/market/orderbook/NOPE-USDC', s)).statusCode).toBe(404);
    expect((await req('GET', '/api/v1/market/trades/NOPE-USDC', s)).statusCode).toBe(404);
    expect((await req('GET', '/api/v1/market/candles/NOPE-USDC', s)).statusCode).toBe(404);
    for (const url of ['/api/v1/market/orderbook/moon-usdc', '/api/v1/market/orderbook/MOON-USDC?depth=0', '/api/v1/market/orderbook/MOON-USDC?depth=101', '/api/v1/market/candles/MOON-USDC?interval=2m', '/api/v1/market/candles/MOON-USDC?from=10&to=5', '/api/v1/market/trades/MOON-USDC?limit=x']) {
      const res = await req('GET', url, s);
      expect(res.statusCode, url).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
  });

  it('needs authentication', async () => {
    expect((await req('GET', '/api/v1/market/markets')).json().code).toBe('unauthenticated');
  });
});

describe('placing orders: every bad input is 400 validation_failed and changes nothing', () => {
  let s: Session;
  let before: string;
  beforeAll(async () => {
    s = await trader('100', '5');
    before = JSON.stringify((await req('GET', '/api/v1/account/balances', s)).json());
  });

  const bad: [string, Record<string, unknown>][] = [
    ['non-decimal quantity', { side: 'buy', price: '1', quantity: 'abc' }],
    ['exponent', { side: 'buy', price: '1', quantity: '1e2' }],
    ['hex', { side: 'buy', price: '0x10', quantity: '1' }],
    ['leading dot', { side: 'buy', price: '1', quantity: '.5' }],
    ['trailing dot', { side: 'buy', price: '1', quantity: '5.' }],
    ['comma', { side: 'buy', price: '1,5', quantity: '1' }],
    ['whitespace', { side: 'buy', price: ' 1', quantity: '1' }],
    ['leading zeros', { side: 'buy', price: '01', quantity: '1' }],
    ['non-ASCII digits', { side: 'buy', price: '١', quantity: '1' }],
    ['JSON number quantity', { side: 'buy', price: '1', quantity: 1 }],
    ['JSON number price', { side: 'buy', price: 1.5, quantity: '1' }],
    ['too many decimals (quantity)', { side: 'buy', price: '1', quantity: '1.0000001' }],
    ['too many decimals (price)', { side: 'buy', price: '1.0000001', quantity: '1' }],
    ['zero quantity', { side: 'buy', price: '1', quantity: '0' }],
    ['zero with decimals', { side: 'buy', price: '1', quantity: '0.00' }],
    ['negative quantity', { side: 'buy', price: '1', quantity: '-1' }],
    ['negative price', { side: 'sell', price: '-1', quantity: '1' }],
    ['zero price', { side: 'sell', price: '0', quantity: '1' }],
    ['price off tick', { side: 'buy', price: '1.00001', quantity: '1' }],
    ['quantity off lot', { side: 'buy', price: '1', quantity: '1.001' }],
    ['below minimum notional', { side: 'buy', price: '0.0001', quantity: '0.01' }],
    ['beyond 2^63 minor units', { side: 'sell', price: '1', quantity: '9223372036854.775808' }],
    ['far beyond 2^63', { side: 'buy', price: '99999999999999999999999999', quantity: '1' }],
    ['unknown market', { market: 'NOPE-USDC', side: 'buy', price: '1', quantity: '1' }],
    ['garbage market', { market: 'MOON/USDC', side: 'buy', price: '1', quantity: '1' }],
    ['limit without price', { side: 'buy', quantity: '1' }],
    ['market with price', { side: 'buy', type: 'market', price: '1', quantity: '1' }],
    ['market GTC', { side: 'buy', type: 'market', quantity: '1', timeInForce: 'GTC' }],
    ['unknown side', { side: 'hold', price: '1', quantity: '1' }],
    ['unknown time in force', { side: 'buy', price: '1', quantity: '1', timeInForce: 'GTD' }],
    ['unknown field', { side: 'buy', price: '1', quantity: '1', leverage: '100' }],
    ['bad clientOrderId', { side: 'buy', price: '1', quantity: '1', clientOrderId: 'has space' }],
    ['missing quantity', { side: 'buy', price: '1' }],
  ];

  it.each(bad)('%s', async (_name, body) => {
    const res = await order(s, body);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'validation_failed', status: 400 });
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
  });

  it('left balances and orders untouched', async () => {
    expect(JSON.stringify((await req('GET', '/api/v1/account/balances', s)).json())).toBe(before);
    expect((await req('GET', '/api/v1/trading/orders', s)).json().orders).toEqual([]);
  });

  it('names the exact problem in the detail', async () => {
    expect((await order(s, { side: 'buy', price: '1', quantity: '1.0000001' })).json().detail).toMatch(/7 decimal places; at most 6/);
    expect((await order(s, { side: 'buy', price: '1.00001', quantity: '1' })).json().detail).toMatch(/tick size 0.0001/);
    expect((await order(s, { side: 'buy', price: '1', quantity: '1.001' })).json().detail).toMatch(/lot size 0.01/);
  });
});

describe('orders over HTTP', () => {
  it('buying beyond the balance is 422 insufficient_funds and changes nothing', async () => {
    const s = await trader('10');
    const res = await order(s, { side: 'buy', price: '5', quantity: '2' });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ code: 'insufficient_funds', asset: 'USDC', required: '10.02', available: '10' });
    expect((await req('GET', '/api/v1/account/balances', s)).json().balances).toEqual([{ asset: 'USDC', available: '10', held: '0', total: '10' }]);
    expect((await req('GET', '/api/v1/trading/orders', s)).json().orders).toEqual([]);
  });

  it('places, lists, reads, cancels one and cancels all', async () => {
    const s = await trader('100');
    const a = await order(s, { side: 'buy', price: '1', quantity: '10', clientOrderId: 'a-1' });
    expect(a.statusCode).toBe(201);
    const created = a.json();
    expect(created).toMatchObject({ clientOrderId: 'a-1', status: 'open', price: '1', quantity: '10', remainingQuantity: '10', filledQuantity: '0', fills: [] });
    expect((await req('GET', '/api/v1/account/balances', s)).json().balances).toEqual([{ asset: 'USDC', available: '89.98', held: '10.02', total: '100' }]);

    const replay = await order(s, { side: 'buy', price: '1', quantity: '10', clientOrderId: 'a-1' });
    expect(replay.statusCode).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json().id).toBe(created.id);

    clock.advance(1); // history is newest first by id, which sorts by creation time to the millisecond
    const b = (await order(s, { side: 'buy', price: '0.9', quantity: '5' })).json();
    expect((await req('GET', `/api/v1/trading/orders/${created.id}`, s)).json()).toMatchObject({ id: created.id, fills: [] });
    const list = (await req('GET', '/api/v1/trading/orders?status=open&limit=1', s)).json();
    expect(list.orders).toHaveLength(1);
    expect(list.next).toBe(b.id);
    const page2 = (await req('GET', `/api/v1/trading/orders?status=open&limit=1&before=${list.next}`, s)).json();
    expect(page2.orders.map((o: { id: string }) => o.id)).toEqual([created.id]);
    // A full page that is the last one says so: no empty page to fetch after it.
    expect(page2.next).toBeNull();

    const cancelled = await req('DELETE', `/api/v1/trading/orders/${created.id}`, s);
    expect(cancelled.json()).toMatchObject({ status: 'cancelled', reason: 'user', remainingQuantity: '0' });
    expect((await req('DELETE', `/api/v1/trading/orders/${created.id}`, s)).json().code).toBe('conflict');
    const other = await sessionFor(server);
    expect((await req('DELETE', `/api/v1/trading/orders/${b.id}`, other)).json().code).toBe('not_found');
    expect((await req('GET', `/api/v1/trading/orders/${b.id}`, other)).statusCode).toBe(404);

    const all = (await req('DELETE', '/api/v1/trading/orders?market=MOON-USDC', s)).json();
    expect(all).toMatchObject({ count: 1, cancelled: [{ id: b.id, status: 'cancelled' }] });
    expect((await req('GET', '/api/v1/account/balances', s)).json().balances).toEqual([{ asset: 'USDC', available: '100', held: '0', total: '100' }]);
    expect((await req('DELETE', '/api/v1/trading/orders?market=NOPE-USDC', s)).statusCode).toBe(400);
    expect((await req('GET', '/api/v1/trading/orders?status=closed', s)).json().orders).toHaveLength(2);
  });

  it('fills, positions, portfolio and close position', async () => {
    const seller = await trader('0', '10');
    const buyer = await trader('100');
    await order(seller, { side: 'sell', price: '4', quantity: '3' });
    const bought = (await order(buyer, { side: 'buy', price: '4', quantity: '2' })).json();
    expect(bought).toMatchObject({ status: 'filled', fees: '0.016' });

    const fills = (await req('GET', '/api/v1/trading/fills', buyer)).json().fills;
    expect(fills).toEqual([expect.objectContaining({ orderId: bought.id, side: 'buy', liquidity: 'taker', price: '4', quantity: '2', notional: '8', fee: '0.016', feeAsset: 'USDC' })]);
    const sellerFills = (await req('GET', '/api/v1/trading/fills?market=MOON-USDC', seller)).json().fills;
    expect(sellerFills).toEqual([expect.objectContaining({ side: 'sell', liquidity: 'maker', fee: '0.008' })]);

    const positions = (await req('GET', '/api/v1/trading/positions', buyer)).json().positions;
    expect(positions).toEqual([expect.objectContaining({ asset: 'MOON', quantity: '2', costBasis: '8.016', averageCost: '4.008', lastPrice: '4', value: '8', unrealizedPnl: '-0.016', realizedPnl: '0' })]);
    const portfolio = (await req('GET', '/api/v1/account/portfolio', buyer)).json();
    expect(portfolio).toMatchObject({ valuationAsset: 'USDC', cash: '91.984', positionsValue: '8', totalValue: '99.984', unrealizedPnl: '-0.016' });

    // Close: sell the 2 MOON into a bid (after the seller's last ask is gone).
    await req('DELETE', '/api/v1/trading/orders', seller);
    const bidder = await trader('100');
    await order(bidder, { side: 'buy', price: '5', quantity: '2' });
    const closed = await req('POST', '/api/v1/trading/positions/MOON/close', buyer);
    expect(closed.statusCode).toBe(201);
    expect(closed.json()).toMatchObject({ side: 'sell', type: 'market', quantity: '2', filledQuantity: '2', status: 'filled' });
    const after = (await req('GET', '/api/v1/trading/positions', buyer)).json().positions;
    expect(after).toEqual([expect.objectContaining({ asset: 'MOON', quantity: '0', costBasis: '0', realizedPnl: '1.964' })]); // 10 − 0.02 fee − 8.016 cost
    expect((await req('POST', '/api/v1/trading/positions/MOON/close', buyer, {})).json().code).toBe('conflict');
    expect((await req('POST', '/api/v1/trading/positions/USDC/close', buyer)).json().code).toBe('validation_failed');
    expect((await req('POST', '/api/v1/trading/positions/ZZZ/close', buyer)).json().code).toBe('not_found');
    expect((await req('POST', '/api/v1/trading/positions/moon/close', buyer)).statusCode).toBe(400);
    await req('DELETE', '/api/v1/trading/orders', seller);
    await req('DELETE', '/api/v1/trading/orders', bidder);
    expect((await server.services.trading.ledger.verify()).ok).toBe(true);
  });

  it('daily limit: admin override via the admin route, 403 daily_limit_exceeded beyond it', async () => {
    const s = await trader('1000');
    const put = await req('PUT', `/api/v1/admin/accounts/${s.account.wallet}/trading-limit`, admin, { dailyNotional: '5' });
    expect(put.json()).toMatchObject({ limit: '5', overridden: true, remaining: '5' });
    expect((await order(s, { side: 'buy', price: '1', quantity: '5' })).statusCode).toBe(201);
    const over = await order(s, { side: 'buy', price: '0.0001', quantity: '10000.01' }); // 1.000001 USDC more
    expect(over.statusCode).toBe(403);
    expect(over.json()).toMatchObject({ code: 'daily_limit_exceeded', limit: '5', remaining: '0' });
    expect((await req('GET', '/api/v1/account/trading-limit', s)).json()).toMatchObject({ limit: '5', open: '5', traded24h: '0', remaining: '0' });
    expect((await req('GET', `/api/v1/admin/accounts/${s.account.wallet}/trading-limit`, admin)).json()).toMatchObject({ limit: '5' });
    expect((await req('GET', `/api/v1/admin/accounts/0x${'ab'.repeat(20)}/trading-limit`, admin)).statusCode).toBe(404);
    // A malformed address is bad input (400), not an unknown account; a store that fails is not one either.
    expect((await req('GET', '/api/v1/admin/accounts/0x1234/trading-limit', admin)).json()).toMatchObject({ status: 400, code: 'validation_failed' });
    const failing = vi.spyOn(server.services.accounts, 'byWallet').mockRejectedValueOnce(new Error('store failed'));
    try {
      expect((await req('GET', `/api/v1/admin/accounts/${s.account.wallet}/trading-limit`, admin)).statusCode).toBe(500);
    } finally {
      failing.mockRestore();
    }
    // Non-admins cannot set limits, and an admin cannot set their own (four eyes): nothing changes.
    expect((await req('PUT', `/api/v1/admin/accounts/${s.account.wallet}/trading-limit`, s, { dailyNotional: '1000000' })).json().code).toBe('forbidden_role');
    const own = await req('PUT', `/api/v1/admin/accounts/${admin.account.wallet}/trading-limit`, admin, { dailyNotional: '999999999' });
    expect({ status: own.statusCode, code: own.json().code }).toEqual({ status: 403, code: 'four_eyes_required' });
    expect((await req('GET', `/api/v1/admin/accounts/${admin.account.wallet}/trading-limit`, admin)).json()).toMatchObject({ overridden: false });
    expect((await req('PUT', `/api/v1/admin/accounts/${s.account.wallet}/trading-limit`, admin, { dailyNotional: 5 })).statusCode).toBe(400);
    // A refused value changes nothing: not even the account it names is created.
    const unknown = `0x${'ef'.repeat(20)}`;
    const refused = await req('PUT', `/api/v1/admin/accounts/${unknown}/trading-limit`, admin, { dailyNotional: '1.0000001' });
    expect(refused.json()).toMatchObject({ code: 'validation_failed' });
    expect(await server.services.accounts.byWallet(unknown)).toBeUndefined();
    expect((await req('PUT', `/api/v1/admin/accounts/${s.account.wallet}/trading-limit`, admin, { dailyNotional: null })).json()).toMatchObject({ limit: '1000000', overridden: false });
    await req('DELETE', '/api/v1/trading/orders', s);
  });

  it('open-orders cap: admin override via the admin route, stored, four eyes, bad input changes nothing', async () => {
    const s = await trader('1000');
    const url = (address: string) => `/api/v1/admin/accounts/${address}/open-orders-limit`;
    expect((await req('GET', url(s.account.wallet), admin)).json()).toEqual({ maxOpenOrders: 200, default: 200, overridden: false });
    expect((await req('GET', '/api/v1/account/trading-limit', s)).json()).toMatchObject({ maxOpenOrders: 200 });
    const put = await req('PUT', url(s.account.wallet), admin, { maxOpenOrders: 5000 });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toEqual({ maxOpenOrders: 5000, default: 200, overridden: true });
    // Stored: a fresh read of the store, the account's own view and the admin trading-limit view show it.
    expect((await server.services.store.db.selectFrom('open_orders_limits').select(['max_open_orders', 'updated_by']).where('account_id', '=', s.account.id).executeTakeFirst())).toEqual({ max_open_orders: 5000, updated_by: admin.account.id });
    expect((await req('GET', url(s.account.wallet), admin)).json()).toEqual({ maxOpenOrders: 5000, default: 200, overridden: true });
    expect((await req('GET', '/api/v1/account/trading-limit', s)).json()).toMatchObject({ maxOpenOrders: 5000, overridden: false });
    expect((await req('GET', `/api/v1/admin/accounts/${s.account.wallet}/trading-limit`, admin)).json()).toMatchObject({ maxOpenOrders: 5000 });
    // Unknown account on GET: 404; malformed address: 400.
    expect((await req('GET', url(`0x${'ab'.repeat(20)}`), admin)).statusCode).toBe(404);
    expect((await req('GET', url('0x1234'), admin)).json()).toMatchObject({ status: 400, code: 'validation_failed' });
    expect((await req('PUT', url('0x1234'), admin, { maxOpenOrders: 10 })).json()).toMatchObject({ status: 400, code: 'validation_failed' });
    // Non-admins cannot set it, and an admin cannot set their own (four eyes): nothing changes.
    expect((await req('PUT', url(s.account.wallet), s, { maxOpenOrders: 100000 })).json().code).toBe('forbidden_role');
    const own = await req('PUT', url(admin.account.wallet), admin, { maxOpenOrders: 100000 });
    expect({ status: own.statusCode, code: own.json().code }).toEqual({ status: 403, code: 'four_eyes_required' });
    expect((await req('GET', url(admin.account.wallet), admin)).json()).toMatchObject({ overridden: false });
    // Bad values: 400, nothing changes, and not even the account a refused value names is created.
    for (const bad of [0, 100001, 2.5, '10', -1, true, {}]) {
      const res = await req('PUT', url(s.account.wallet), admin, { maxOpenOrders: bad });
      expect(res.statusCode, JSON.stringify(bad)).toBe(400);
    }
    expect((await req('PUT', url(s.account.wallet), admin, {})).statusCode).toBe(400);
    expect((await req('GET', url(s.account.wallet), admin)).json()).toMatchObject({ maxOpenOrders: 5000 });
    const unknown = `0x${'cd'.repeat(20)}`;
    expect((await req('PUT', url(unknown), admin, { maxOpenOrders: 0 })).json()).toMatchObject({ code: 'validation_failed' });
    expect(await server.services.accounts.byWallet(unknown)).toBeUndefined();
    // A valid PUT for an account not yet signed in prepares it, as the trading-limit route does.
    expect((await req('PUT', url(unknown), admin, { maxOpenOrders: 7 })).json()).toEqual({ maxOpenOrders: 7, default: 200, overridden: true });
    expect(await server.services.accounts.byWallet(unknown)).toBeDefined();
    // null restores the default and removes the row.
    expect((await req('PUT', url(s.account.wallet), admin, { maxOpenOrders: null })).json()).toEqual({ maxOpenOrders: 200, default: 200, overridden: false });
    expect(await server.services.store.db.selectFrom('open_orders_limits').select('account_id').where('account_id', '=', s.account.id).executeTakeFirst()).toBeUndefined();
  });

  it('503 trading_halted while halted, from the shared-state flag', async () => {
    const s = await trader('100');
    await setHalt(server.services.state, { reason: 'incident', by: 'test', at: clock.now() });
    const res = await order(s, { side: 'buy', price: '1', quantity: '1' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'trading_halted', scope: 'global' });
    await clearHalt(server.services.state);
    expect((await order(s, { side: 'buy', price: '1', quantity: '1' })).statusCode).toBe(201);
    await req('DELETE', '/api/v1/trading/orders', s);
  });

  it('roles: developers read but never trade; auditors do not read orders; anonymous is refused', async () => {
    const dev = await sessionFor(server, { role: 'developer' });
    expect((await order(dev, { side: 'buy', price: '1', quantity: '1' })).json().code).toBe('forbidden_role');
    expect((await req('POST', '/api/v1/trading/positions/MOON/close', dev)).json().code).toBe('forbidden_role');
    expect((await req('POST', '/api/v1/sandbox/faucet', dev, { asset: 'USDC', amount: '1' })).json().code).toBe('forbidden_role');
    expect((await req('GET', '/api/v1/trading/orders', dev)).statusCode).toBe(200);
    expect((await req('GET', '/api/v1/account/balances', dev)).statusCode).toBe(200);
    const auditor = await sessionFor(server, { role: 'auditor' });
    expect((await req('GET', '/api/v1/trading/orders', auditor)).json().code).toBe('forbidden_role');
    expect((await req('GET', '/api/v1/trading/fills', auditor)).json().code).toBe('forbidden_role');
    expect((await req('POST', '/api/v1/admin/markets', auditor, {})).json().code).toBe('forbidden_role');
    for (const [method, url] of [
      ['POST', '/api/v1/trading/orders'],
      ['GET', '/api/v1/trading/orders'],
      ['GET', '/api/v1/trading/fills'],
      ['GET', '/api/v1/trading/positions'],
      ['GET', '/api/v1/account/balances'],
      ['GET', '/api/v1/account/portfolio'],
      ['POST', '/api/v1/sandbox/faucet'],
    ] as const) {
      expect((await req(method, url)).json().code, url).toBe('unauthenticated');
    }
  });

  it('records who placed, cancelled and traded (account and session) for the audit trail', async () => {
    const s = await trader('100');
    const o = (await order(s, { side: 'buy', price: '1', quantity: '1' })).json();
    await req('DELETE', `/api/v1/trading/orders/${o.id}`, s);
    const row = await server.services.store.db.selectFrom('orders').selectAll().where('id', '=', o.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ account_id: s.account.id, actor_kind: 'session', actor_id: s.sessionId, cancel_actor_kind: 'session', cancel_actor_id: s.sessionId });
  });
});

describe('an order with many fills', () => {
  it('GET /trading/orders/:id answers every fill of the order, past the first thousand', async () => {
    // A market of its own, so the sweep meets only the asks placed here.
    expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'SWEEP', name: 'Sweep', decimals: 2 })).statusCode).toBe(201);
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'SWEEP', quote: 'USDC', tickSize: '0.01', lotSize: '1', minNotional: '0.01' })).statusCode).toBe(201);
    const { callerFor, fund } = await import('../support/trading.js');
    // Spread over accounts: each may rest at most MOONDRAFT_MAX_OPEN_ORDERS (200) in a market.
    const accounts: string[] = [];
    for (let k = 0; k < 6; k++) {
      const maker = await trader('0');
      await fund(server.services.trading, maker.account.id, 'SWEEP', 200n * 100n);
      accounts.push(maker.account.id);
    }
    const makers = 1_005;
    for (let i = 0; i < makers; i++) {
      const placed = await server.services.trading.orders.place(callerFor(accounts[i % accounts.length]!), { market: 'SWEEP-USDC', side: 'sell', type: 'limit', price: '1', quantity: '1' });
      expect(placed.ok).toBe(true);
    }
    const taker = await trader('2000');
    const sweep = await req('POST', '/api/v1/trading/orders', taker, { market: 'SWEEP-USDC', side: 'buy', type: 'limit', price: '1', quantity: String(makers), timeInForce: 'IOC' });
    expect(sweep.statusCode).toBe(201);
    expect(sweep.json()).toMatchObject({ status: 'filled', filledQuantity: String(makers) });
    const read = (await req('GET', `/api/v1/trading/orders/${sweep.json().id}`, taker)).json();
    expect(read.fills).toHaveLength(makers);
    // Oldest first, each fill once.
    expect(new Set(read.fills.map((f: { id: string }) => f.id)).size).toBe(makers);
    expect(read.fills.map((f: { id: string }) => f.id)).toEqual([...read.fills.map((f: { id: string }) => f.id)].sort());
  });
});

describe('admin: assets and markets', () => {
  it('validates listings and delists with open orders', async () => {
    expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'MOON', name: 'again', decimals: 6 })).json().code).toBe('conflict');
    expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'bad', name: 'x', decimals: 6 })).statusCode).toBe(400);
    expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'XYZ', name: 'x', decimals: 19 })).statusCode).toBe(400);
    expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'GEM', name: 'Gem', decimals: 18 })).statusCode).toBe(201);
    const coarse = await req('POST', '/api/v1/admin/markets', admin, { base: 'GEM', quote: 'USDC', tickSize: '0.0001', lotSize: '0.000001', minNotional: '1' });
    expect(coarse.statusCode).toBe(400);
    expect(coarse.json().detail).toMatch(/lotSize that is a multiple of 0.01/);
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'GEM', quote: 'MOON', tickSize: '1', lotSize: '1', minNotional: '1' })).json().detail).toMatch(/quoted in USDC/);
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'NOPE', quote: 'USDC', tickSize: '1', lotSize: '1', minNotional: '1' })).statusCode).toBe(400);
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'GEM', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1' })).statusCode).toBe(201);
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'GEM', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1' })).json().code).toBe('conflict');

    const s = await trader('100');
    expect((await req('POST', '/api/v1/trading/orders', s, { market: 'GEM-USDC', side: 'buy', type: 'limit', price: '2', quantity: '1' })).statusCode).toBe(201);
    const delisted = await req('DELETE', '/api/v1/admin/markets/GEM-USDC', admin);
    expect(delisted.json()).toEqual({ market: 'GEM-USDC', cancelled: 1 });
    expect((await req('GET', '/api/v1/account/balances', s)).json().balances).toEqual([{ asset: 'USDC', available: '100', held: '0', total: '100' }]);
    expect((await req('POST', '/api/v1/trading/orders', s, { market: 'GEM-USDC', side: 'buy', type: 'limit', price: '2', quantity: '1' })).statusCode).toBe(400);
    expect((await req('GET', '/api/v1/market/markets', s)).json().markets.map((m: { symbol: string }) => m.symbol)).not.toContain('GEM-USDC');
    expect((await req('DELETE', '/api/v1/admin/markets/GEM-USDC', admin)).json().code).toBe('conflict');
    expect((await req('DELETE', '/api/v1/admin/markets/GEM-USDC', s)).json().code).toBe('forbidden_role');
  });
});

describe('sandbox faucet', () => {
  it('credits within bounds and refuses beyond them', async () => {
    let s = await sessionFor(server);
    expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: '10000' })).json()).toEqual({ asset: 'USDC', amount: '10000', available: '10000' });
    expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: '10000.000001' })).json().code).toBe('validation_failed');
    for (let i = 0; i < 9; i++) expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: '10000' })).statusCode).toBe(200);
    const over = await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: '0.000001' });
    expect(over.statusCode).toBe(403);
    expect(over.json().code).toBe('faucet_limit_exceeded');
    clock.advance(24 * 3_600_000 + 1);
    // A day later (with a fresh token: the old one expired) the faucet gives again.
    const later = await sessionFor(server, { wallet: s.account.wallet });
    expect((await req('POST', '/api/v1/sandbox/faucet', later, { asset: 'USDC', amount: '1' })).statusCode).toBe(200);
    s = later;
    expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'MOON', amount: '1' })).json().code).toBe('validation_failed');
    expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: 1 })).json().code).toBe('validation_failed');
    expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: '0' })).json().code).toBe('validation_failed');
  });

  it('does not exist in live', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moondraft-live-'));
    const keys = path.join(dir, 'jwt.json');
    ensureKeysetFile(keys, Date.now());
    const live = await startTestServer({ env: { MOONDRAFT_ENV: 'live', MOONDRAFT_MASTER_KEY: Keyring.generateSpec(1), MOONDRAFT_JWT_KEYS_FILE: keys, MOONDRAFT_TRUSTED_PROXIES: '127.0.0.1', MOONDRAFT_PUBLIC_URL: 'https://api.example.test' } });
    try {
      const s = await sessionFor(live);
      const res = await live.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: { ...s.headers, 'x-forwarded-proto': 'https' }, payload: { asset: 'USDC', amount: '1' } });
      expect(res.statusCode).toBe(404);
      expect(res.json().code).toBe('not_found');
    } finally {
      await live.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('after all of the above', () => {
  it('the ledger verifies', async () => {
    const r = await server.services.trading.ledger.verify();
    expect(r.violation).toBeUndefined();
    expect(r.entries).toBeGreaterThan(10);
  });

  it('the OpenAPI document lists the trading routes', async () => {
    const doc = (await req('GET', '/openapi.json')).json();
    for (const p of ['/api/v1/trading/orders', '/api/v1/market/orderbook/{market}', '/api/v1/account/balances', '/api/v1/sandbox/faucet', '/api/v1/admin/accounts/{address}/trading-limit']) expect(Object.keys(doc.paths)).toContain(p);
  });
});
