import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { fund, MOON } from '../support/trading.js';

/**
 * Read-your-writes: once an order, a cancel, a faucet grant or a withdrawal is answered, the very
 * next read shows it: on the same server (order thread on, as served) and, on two scale-out
 * servers, on the other one too (its book is rebuilt when the market's seq moved on).
 */
type Session = Awaited<ReturnType<typeof sessionFor>>;
const ROUNDS = 50;

let admin: Session;
async function setup(server: TestServer): Promise<void> {
  admin = await sessionFor(server, { role: 'admin' });
  expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/assets', headers: admin.headers, payload: { symbol: 'MOON', name: 'Moon', decimals: 6 } })).statusCode).toBe(201);
  const listed = await server.app.inject({ method: 'POST', url: '/api/v1/admin/markets', headers: admin.headers, payload: { base: 'MOON', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '0.01' } });
  expect(listed.statusCode).toBe(201);
}

async function trader(server: TestServer, moon = 0): Promise<Session> {
  const s = await sessionFor(server);
  // The loop reads far faster than a client may: lift the rate limits, not what is measured.
  const lifted = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${s.account.wallet}/limits`, headers: admin.headers, payload: { market: 100_000, trading: 100_000, account: 100_000 } });
  expect(lifted.statusCode, lifted.body).toBe(200);
  expect((await server.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: s.headers, payload: { asset: 'USDC', amount: '1000' } })).statusCode).toBe(200);
  if (moon > 0) await fund(server.services.trading, s.account.id, 'MOON', MOON(moon));
  return s;
}

const get = async (server: TestServer, s: Session, url: string) => {
  const res = await server.app.inject({ method: 'GET', url, headers: s.headers });
  if (res.statusCode !== 200) throw new Error(`GET ${url}: ${res.statusCode} ${res.body}`);
  return res;
};
const usdc = (balances: { asset: string; available: string; held: string }[]) => balances.find((b) => b.asset === 'USDC');

/** Place-then-read on `w`, read on `r`: counts every read that does not show the answered write. */
async function loop(w: TestServer, r: TestServer): Promise<Record<string, number>> {
  const misses: Record<string, number> = {};
  const miss = (what: string, ok: boolean) => {
    if (!ok) misses[what] = (misses[what] ?? 0) + 1;
  };
  const maker = await trader(w, 10 * ROUNDS);
  const taker = await trader(w);
  for (let i = 0; i < ROUNDS; i++) {
    // A resting bid at a price of its own (fresh best bid each round).
    const price = (1 + i * 0.01).toFixed(2);
    const placed = await w.app.inject({ method: 'POST', url: '/api/v1/trading/orders', headers: taker.headers, payload: { market: 'MOON-USDC', type: 'limit', side: 'buy', price, quantity: '1' } });
    expect(placed.statusCode, placed.body).toBe(201);
    const id = placed.json().id as string;
    const book = (await get(r, taker, '/api/v1/market/orderbook/MOON-USDC')).json();
    miss('book: resting bid', Number(book.bids[0]?.price) === Number(price));
    const tickers = (await get(r, taker, '/api/v1/market/tickers')).json().tickers as { market: string; bestBid: string | null; last: string | null }[];
    miss('tickers: best bid', Number(tickers.find((t) => t.market === 'MOON-USDC')?.bestBid) === Number(price));
    const open = (await get(r, taker, '/api/v1/trading/orders?status=open')).json();
    miss('open orders', JSON.stringify(open).includes(id));
    miss('order by id', (await get(r, taker, `/api/v1/trading/orders/${id}`).catch(() => null)) !== null);
    const held = usdc((await get(r, taker, '/api/v1/account/balances')).json().balances);
    miss('balances: held', held !== undefined && Number(held.held) > 0);

    // A sell that fills it: trades, last price, positions, portfolio.
    const sell = await w.app.inject({ method: 'POST', url: '/api/v1/trading/orders', headers: maker.headers, payload: { market: 'MOON-USDC', type: 'limit', side: 'sell', price, quantity: '1' } });
    expect(sell.json().status, sell.body).toBe('filled');
    const trades = (await get(r, taker, '/api/v1/market/trades/MOON-USDC')).json().trades as { price: string }[];
    miss('trades: fill', trades.length === i + 1);
    const t2 = (await get(r, taker, '/api/v1/market/tickers')).json().tickers as { market: string; bestBid: string | null; last: string | null }[];
    const tk = t2.find((t) => t.market === 'MOON-USDC');
    miss('tickers: last price', Number(tk?.last) === Number(price));
    miss('tickers: bid gone', tk?.bestBid === null || Number(tk?.bestBid) !== Number(price));
    const book2 = (await get(r, maker, '/api/v1/market/orderbook/MOON-USDC')).json();
    miss('book: filled bid gone', book2.bids.length === 0);
    const positions = (await get(r, taker, '/api/v1/trading/positions')).json();
    miss('positions', JSON.stringify(positions).includes(`"quantity":"${i + 1}"`));
    const portfolio = (await get(r, taker, '/api/v1/account/portfolio')).json();
    miss('portfolio', JSON.stringify(portfolio.positions).includes(`"quantity":"${i + 1}"`));

    // A resting bid cancelled: gone from the book at once.
    const again = await w.app.inject({ method: 'POST', url: '/api/v1/trading/orders', headers: taker.headers, payload: { market: 'MOON-USDC', type: 'limit', side: 'buy', price, quantity: '1' } });
    expect(again.statusCode).toBe(201);
    await get(r, taker, '/api/v1/market/orderbook/MOON-USDC'); // the reader has seen it
    const cancelled = await w.app.inject({ method: 'DELETE', url: `/api/v1/trading/orders/${again.json().id}`, headers: taker.headers });
    expect(cancelled.statusCode).toBe(200);
    miss('book: cancelled gone', (await get(r, taker, '/api/v1/market/orderbook/MOON-USDC')).json().bids.length === 0);
    const t3 = (await get(r, taker, '/api/v1/market/tickers')).json().tickers as { market: string; bestBid: string | null }[];
    miss('tickers: cancelled gone', t3.find((t) => t.market === 'MOON-USDC')?.bestBid === null);
    miss('balances: hold released', Number(usdc((await get(r, taker, '/api/v1/account/balances')).json().balances)?.held) === 0);

    // Faucet and withdrawal.
    if (i < 5) {
      const before = Number(usdc((await get(r, taker, '/api/v1/account/balances')).json().balances)?.available);
      const grant = await w.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: taker.headers, payload: { asset: 'USDC', amount: '1' } });
      if (grant.statusCode !== 200) misses[`faucet answered ${grant.statusCode}`] = 1;
      else miss('balances: faucet', Number(usdc((await get(r, taker, '/api/v1/account/balances')).json().balances)?.available) === before + 1);
      const wd = await w.app.inject({ method: 'POST', url: '/api/v1/account/withdrawals', headers: taker.headers, payload: { asset: 'USDC', amount: '1', address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed' } });
      if (wd.statusCode === 201) {
        const after = usdc((await get(r, taker, '/api/v1/account/balances')).json().balances);
        miss('balances: withdrawal', Number(after?.available) <= before);
      } else misses[`withdrawal answered ${wd.statusCode}`] = 1;
    }
  }
  return misses;
}

/** Many clients at once, each placing then reading (and cancelling then reading) its own bid. */
async function concurrent(w: TestServer, r: TestServer, clients = 10, rounds = 10): Promise<Record<string, number>> {
  const misses: Record<string, number> = {};
  const miss = (what: string, ok: boolean) => {
    if (!ok) misses[what] = (misses[what] ?? 0) + 1;
  };
  const traders = await Promise.all(Array.from({ length: clients }, () => trader(w)));
  await Promise.all(
    traders.map(async (t, k) => {
      for (let i = 0; i < rounds; i++) {
        // Bids only, each client at prices of its own: nothing fills, every level is one client's.
        const price = (0.5 + k * 0.01 + i * 0.0001).toFixed(4);
        const placed = await w.app.inject({ method: 'POST', url: '/api/v1/trading/orders', headers: t.headers, payload: { market: 'MOON-USDC', type: 'limit', side: 'buy', price, quantity: '1' } });
        expect(placed.statusCode, placed.body).toBe(201);
        const book = (await get(r, t, '/api/v1/market/orderbook/MOON-USDC?depth=100')).json();
        miss('book: own bid', book.bids.some((l: { price: string }) => Number(l.price) === Number(price)));
        miss('open orders', JSON.stringify((await get(r, t, '/api/v1/trading/orders?status=open')).json()).includes(placed.json().id));
        const cancelled = await w.app.inject({ method: 'DELETE', url: `/api/v1/trading/orders/${placed.json().id}`, headers: t.headers });
        expect(cancelled.statusCode).toBe(200);
        const after = (await get(r, t, '/api/v1/market/orderbook/MOON-USDC?depth=100')).json();
        miss('book: cancelled bid gone', !after.bids.some((l: { price: string }) => Number(l.price) === Number(price)));
      }
    }),
  );
  return misses;
}

describe('read-your-writes, order thread on (as served)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ sqliteFile: true, env: { MOONDRAFT_ORDER_THREAD: 'on' } });
    expect(server.services.trading.orders.threaded).toBe(true);
    await setup(server);
  });
  afterAll(async () => server?.close());

  it(`${ROUNDS} writes, each read back at once on the same server`, async () => {
    const misses = await loop(server, server);
    expect(misses).toEqual({});
  }, 120_000);

  it('10 clients at once, 10 rounds each, read back at once on the same server', async () => {
    const misses = await concurrent(server, server);
    expect(misses).toEqual({});
  }, 120_000);
});

const up = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

describe.skipIf(!up)('read-your-writes on two scale-out servers', () => {
  const isolation = newIsolation();
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    a = await startTestServer({ backend: 'scaleout', isolation });
    b = await startTestServer({ backend: 'scaleout', isolation, dataDir: a.dataDir });
    await setup(a);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await dropSchema(isolation.pgSchema);
  });

  it(`${ROUNDS} writes on one server, each read back at once on the other`, async () => {
    const misses = await loop(a, b);
    expect(misses).toEqual({});
  }, 120_000);

  it('10 clients at once, writing on A and reading on B', async () => {
    const misses = await concurrent(a, b);
    expect(misses).toEqual({});
  }, 120_000);
});
