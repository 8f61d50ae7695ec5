import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { fund } from '../support/trading.js';

type Session = Awaited<ReturnType<typeof sessionFor>>;
let server: TestServer;
let admin: Session;
const clock = new ManualClock(Date.UTC(2026, 3, 1, 10, 0, 30));
const req = (method: string, url: string, s?: Session, payload?: unknown) =>
  server.app.inject({ method: method as 'GET', url, ...(s ? { headers: s.headers } : {}), ...(payload !== undefined ? { payload: payload as object } : {}) });

async function listMarket(base: string) {
  admin = await sessionFor(server, { role: 'admin' });
  expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: base, name: base, decimals: 6 })).statusCode).toBe(201);
  expect((await req('POST', '/api/v1/admin/markets', admin, { base, quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1', makerFeeBps: 10, takerFeeBps: 20 })).statusCode).toBe(201);
}
async function trader(usdc: string, base?: string, amount?: number): Promise<Session> {
  const s = await sessionFor(server);
  if (usdc !== '0') expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: usdc })).statusCode).toBe(200);
  if (base) await fund(server.services.trading, s.account.id, base, BigInt(amount! * 1e6));
  return s;
}
async function trade(mk: string, maker: Session, taker: Session, price: string, quantity: string) {
  expect((await req('POST', '/api/v1/trading/orders', maker, { market: mk, type: 'limit', side: 'sell', price, quantity })).statusCode).toBe(201);
  const r = await req('POST', '/api/v1/trading/orders', taker, { market: mk, type: 'market', side: 'buy', quantity });
  expect(r.json().status).toBe('filled');
}
/** A new market BASE-USDC, a maker holding 100 BASE and a taker holding 1,000 USDC. */
async function newMarket(base: string) {
  await listMarket(base);
  return { mk: `${base}-USDC`, maker: await trader('0', base, 100), taker: await trader('1000') };
}
const tickerOf = async (mk: string, s: Session) => (await req('GET', '/api/v1/market/tickers', s)).json().tickers.find((t: { market: string }) => t.market === mk);

beforeAll(async () => {
  server = await startTestServer({ clock });
  admin = await sessionFor(server, { role: 'admin' });
});
afterAll(() => server.close());

describe('market data edges: candles', () => {
  it('limit returns the newest candles, including the current one', async () => {
    const { mk, maker, taker } = await newMarket('CAA');
    const t0 = Math.floor(clock.now() / 60_000) * 60_000;
    await trade(mk, maker, taker, '2', '1');
    clock.advance(60_000);
    await trade(mk, maker, taker, '3', '1');
    clock.advance(60_000);
    await trade(mk, maker, taker, '4', '1');
    const all = (await req('GET', `/api/v1/market/candles/${mk}?interval=1m`, taker)).json().candles;
    expect(all.map((c: { start: number }) => c.start)).toEqual([t0, t0 + 60_000, t0 + 120_000]);
    const two = (await req('GET', `/api/v1/market/candles/${mk}?interval=1m&limit=2`, taker)).json().candles;
    expect(two.map((c: { close: string }) => c.close)).toEqual(['3', '4']);
    const one = (await req('GET', `/api/v1/market/candles/${mk}?interval=1m&limit=1`, taker)).json().candles;
    expect(one.map((c: { close: string }) => c.close)).toEqual(['4']);
  });

  it('1d candles split at UTC midnight', async () => {
    clock.set(Date.UTC(2026, 3, 2, 23, 59, 30));
    const { mk, maker, taker } = await newMarket('CAB');
    await trade(mk, maker, taker, '2', '1');
    clock.advance(60_000);
    await trade(mk, maker, taker, '3', '1');
    const d = (await req('GET', `/api/v1/market/candles/${mk}?interval=1d&from=${Date.UTC(2026, 3, 1)}`, taker)).json().candles;
    expect(d.map((c: { start: number; close: string }) => [c.start, c.close])).toEqual([[Date.UTC(2026, 3, 2), '2'], [Date.UTC(2026, 3, 3), '3']]);
  });
});

describe('market data edges: tickers', () => {
  it('24 h window counts a trade less than 24 h old', async () => {
    const { mk, maker, taker } = await newMarket('TKA');
    const at = Math.floor(clock.now() / 60_000) * 60_000 + 50_000; // :50 in the minute
    clock.advance(at - clock.now());
    await trade(mk, maker, taker, '2', '1');
    clock.advance(86_400_000 - 30_000); // 23h59m30s later
    const t = await tickerOf(mk, await sessionFor(server));
    expect(t).toMatchObject({ last: '2', volume24h: '1', trades24h: 1 });
  });

  it('no trade in 24 h: zero volume, change 0, last kept', async () => {
    const { mk, maker, taker } = await newMarket('TKB');
    await trade(mk, maker, taker, '2', '1');
    clock.advance(25 * 3_600_000);
    const t = await tickerOf(mk, await sessionFor(server));
    expect(t).toMatchObject({ last: '2', volume24h: '0', trades24h: 0, change24h: '0' });
  });

  it('negative change formats', async () => {
    const { mk, maker, taker } = await newMarket('TKC');
    await trade(mk, maker, taker, '2', '1');
    await trade(mk, maker, taker, '1.99', '1');
    const t = await tickerOf(mk, taker);
    expect(t).toMatchObject({ last: '1.99', open24h: '2', change24h: '-0.01', changePercent24h: '-0.5', high24h: '2', low24h: '1.99' });
  });
  it('24 h change in percent is exact for a large move (no float conversion)', async () => {
    // Tick of one minor unit: the price moves from 0.000001 to 1234567890.123457 USDC.
    await req('POST', '/api/v1/admin/assets', admin, { symbol: 'TKD', name: 'TKD', decimals: 6 });
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'TKD', quote: 'USDC', tickSize: '0.000001', lotSize: '1', minNotional: '0.000001', makerFeeBps: 10, takerFeeBps: 20 })).statusCode).toBe(201);
    const mk = 'TKD-USDC';
    const maker = await trader('0', 'TKD', 10);
    const taker = await sessionFor(server);
    await fund(server.services.trading, taker.account.id, 'USDC', 2_000_000_000n * 1_000_000n);
    await server.services.trading.limits.setOverride(taker.account.id, '10000000000', 'test');
    await server.services.trading.limits.setOverride(maker.account.id, '10000000000', 'test');
    await trade(mk, maker, taker, '0.000001', '1');
    await trade(mk, maker, taker, '1234567890.123457', '1');
    const t = await tickerOf(mk, taker);
    // (1234567890123457 − 1) minor units on 1: 1,234,567,890,123,456 × 100 % = 123456789012345600 %.
    expect(t).toMatchObject({ last: '1234567890.123457', open24h: '0.000001', change24h: '1234567890.123456', changePercent24h: '123456789012345600' });
  });
});

describe('market data edges: order book', () => {
  it('book reflects cancel and fill immediately', async () => {
    const { mk, maker, taker } = await newMarket('BKA');
    const b = await req('POST', '/api/v1/trading/orders', taker, { market: mk, type: 'limit', side: 'buy', price: '1.5', quantity: '1' });
    await req('POST', '/api/v1/trading/orders', taker, { market: mk, type: 'limit', side: 'buy', price: '1.5', quantity: '2' });
    await req('POST', '/api/v1/trading/orders', maker, { market: mk, type: 'limit', side: 'sell', price: '1.7', quantity: '2' });
    let book = (await req('GET', `/api/v1/market/orderbook/${mk}`, taker)).json();
    expect(book.bids).toEqual([{ price: '1.5', quantity: '3', orders: 2 }]);
    expect((await req('DELETE', `/api/v1/trading/orders/${b.json().id}`, taker)).statusCode).toBe(200);
    book = (await req('GET', `/api/v1/market/orderbook/${mk}`, taker)).json();
    expect(book.bids).toEqual([{ price: '1.5', quantity: '2', orders: 1 }]);
    expect((await req('POST', '/api/v1/trading/orders', taker, { market: mk, type: 'market', side: 'buy', quantity: '0.6' })).statusCode).toBe(201);
    book = (await req('GET', `/api/v1/market/orderbook/${mk}`, taker)).json();
    expect(book.asks).toEqual([{ price: '1.7', quantity: '1.4', orders: 1 }]);
    const t = await tickerOf(mk, taker);
    expect(t).toMatchObject({ bestBid: '1.5', bestAsk: '1.7' });
  });

  it('a delisted market: its book is empty (resting orders cancelled, holds released) and it has no ticker', async () => {
    await listMarket('BKB');
    const mk = 'BKB-USDC';
    const taker = await trader('1000');
    expect((await req('POST', '/api/v1/trading/orders', taker, { market: mk, type: 'limit', side: 'buy', price: '1.5', quantity: '1' })).statusCode).toBe(201);
    expect((await req('GET', `/api/v1/market/orderbook/${mk}`, taker)).json().bids).toHaveLength(1);
    expect(await tickerOf(mk, taker)).toBeDefined();
    const d = await req('DELETE', `/api/v1/admin/markets/${mk}`, admin);
    expect(d.statusCode, d.body).toBe(200);
    const r = await req('GET', `/api/v1/market/orderbook/${mk}`, taker);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ market: mk, bids: [], asks: [] });
    expect(await tickerOf(mk, taker)).toBeUndefined();
    const usdc = (await req('GET', '/api/v1/account/balances', taker)).json().balances.find((b: { asset: string }) => b.asset === 'USDC');
    expect(usdc).toMatchObject({ available: '1000', held: '0' });
  });
});
