import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setHalt, clearHalt } from '../../src/trading/index.js';
import { readMinor } from '../../src/trading/money.js';
import { sessionFor } from '../support/auth.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { fund, MOON } from '../support/trading.js';

/**
 * Two server processes' worth of services on one PostgreSQL schema and one Redis prefix, each
 * with its own in-memory books: orders sent to either must match as if there were one book.
 */
const up = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

describe.skipIf(!up)('two scale-out servers sharing one PostgreSQL', () => {
  const isolation = newIsolation();
  let a: TestServer;
  let b: TestServer;
  type Session = Awaited<ReturnType<typeof sessionFor>>;
  const post = (server: TestServer, s: Session, body: Record<string, unknown>) =>
    server.app.inject({ method: 'POST', url: '/api/v1/trading/orders', headers: s.headers, payload: { market: 'MOON-USDC', type: 'limit', ...body } });
  const get = (server: TestServer, s: Session, url: string) => server.app.inject({ method: 'GET', url, headers: s.headers });

  beforeAll(async () => {
    a = await startTestServer({ backend: 'scaleout', isolation });
    b = await startTestServer({ backend: 'scaleout', isolation, dataDir: a.dataDir });
    const admin = await sessionFor(a, { role: 'admin' });
    expect((await a.app.inject({ method: 'POST', url: '/api/v1/admin/assets', headers: admin.headers, payload: { symbol: 'MOON', name: 'Moon', decimals: 6 } })).statusCode).toBe(201);
    const listed = await a.app.inject({ method: 'POST', url: '/api/v1/admin/markets', headers: admin.headers, payload: { base: 'MOON', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '0.01' } });
    expect(listed.statusCode).toBe(201);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await dropSchema(isolation.pgSchema);
  });

  async function trader(server: TestServer, moon = 0): Promise<Session> {
    const s = await sessionFor(server);
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: s.headers, payload: { asset: 'USDC', amount: '1000' } })).statusCode).toBe(200);
    if (moon > 0) await fund(server.services.trading, s.account.id, 'MOON', MOON(moon));
    return s;
  }

  it('an order on one server matches a resting order placed on the other', async () => {
    const maker = await trader(a, 10);
    const taker = await trader(b);
    expect((await get(b, taker, '/api/v1/market/orderbook/MOON-USDC')).json().asks).toEqual([]);
    const ask = await post(a, maker, { side: 'sell', price: '3', quantity: '2' });
    expect(ask.statusCode).toBe(201);
    // B has never seen this order: its book is behind the market's seq and is rebuilt first.
    expect((await get(b, taker, '/api/v1/market/orderbook/MOON-USDC')).json().asks).toEqual([{ price: '3', quantity: '2', orders: 1 }]);
    const bid = await post(b, taker, { side: 'buy', price: '3', quantity: '1.5' });
    expect(bid.json()).toMatchObject({ status: 'filled', fills: [{ price: '3', quantity: '1.5' }] });
    // And A learns about B's fill before serving or matching.
    expect((await get(a, maker, '/api/v1/market/orderbook/MOON-USDC')).json().asks).toEqual([{ price: '3', quantity: '0.5', orders: 1 }]);
    const cancel = await a.app.inject({ method: 'DELETE', url: `/api/v1/trading/orders/${ask.json().id}`, headers: maker.headers });
    expect(cancel.json()).toMatchObject({ status: 'cancelled', filledQuantity: '1.5' });
  });

  it('concurrent crossing orders on both servers never double-fill and leave one consistent book', async () => {
    const sellers = await Promise.all([trader(a, 50), trader(b, 50), trader(a, 50)]);
    const buyers = await Promise.all([trader(b), trader(a), trader(b)]);
    const sends: Promise<{ statusCode: number; json(): any }>[] = [];
    for (let i = 0; i < 24; i++) {
      const server = i % 2 === 0 ? a : b;
      const price = (2.9 + (i % 5) * 0.05).toFixed(2);
      sends.push(post(server, sellers[i % 3]!, { side: 'sell', price, quantity: '1' }));
      sends.push(post(server === a ? b : a, buyers[i % 3]!, { side: 'buy', price: (3.2 - (i % 5) * 0.05).toFixed(2), quantity: '1.3' }));
    }
    const results = await Promise.all(sends);
    for (const r of results) expect(r.statusCode, JSON.stringify(r.json())).toBe(201);

    const db = a.services.store.db;
    const orders = await db.selectFrom('orders').selectAll().execute();
    const fills = await db.selectFrom('fills').selectAll().execute();
    for (const o of orders) {
      const filled = fills.filter((f) => f.taker_order_id === o.id || f.maker_order_id === o.id).reduce((s, f) => s + readMinor(f.quantity), 0n);
      expect(filled).toBe(readMinor(o.filled));
      expect(filled).toBeLessThanOrEqual(readMinor(o.quantity));
    }
    const seqs = fills.map((f) => Number(f.trade_seq)).sort((x, y) => x - y);
    expect(new Set(seqs).size).toBe(seqs.length);

    const viewer = await sessionFor(a);
    const bookA = (await get(a, viewer, '/api/v1/market/orderbook/MOON-USDC?depth=100')).json();
    const bookB = (await get(b, viewer, '/api/v1/market/orderbook/MOON-USDC?depth=100')).json();
    expect(bookB.bids).toEqual(bookA.bids);
    expect(bookB.asks).toEqual(bookA.asks);
    if (bookA.bids[0] && bookA.asks[0]) expect(Number(bookA.bids[0].price)).toBeLessThan(Number(bookA.asks[0].price));
    const open = orders.filter((o) => o.status === 'open' || o.status === 'partially_filled');
    const restingQty = open.reduce((s, o) => s + readMinor(o.remaining), 0n);
    const bookQty = [...bookA.bids, ...bookA.asks].reduce((s: bigint, l: { quantity: string }) => s + BigInt(Math.round(Number(l.quantity) * 1e6)), 0n);
    expect(bookQty).toBe(restingQty);

    const report = await a.services.trading.ledger.verify();
    expect(report.violation).toBeUndefined();
  });

  it('a clientOrderId raced on both servers yields one order', async () => {
    const s = await trader(a);
    const racing = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => post(i % 2 ? a : b, s, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'race-1' })));
    const ids = new Set(racing.map((r) => r.json().id));
    expect(ids.size).toBe(1);
    expect(racing.filter((r) => r.statusCode === 201)).toHaveLength(1);
    const rows = await a.services.store.db.selectFrom('orders').select('id').where('account_id', '=', s.account.id).execute();
    expect(rows).toHaveLength(1);
  });

  it('order and fill ids with a NUL byte are 400 validation_failed, not a store error (PostgreSQL refuses NUL in text)', async () => {
    const s = await trader(a);
    const placed = await post(a, s, { side: 'buy', price: '1', quantity: '1' });
    expect(placed.statusCode).toBe(201);
    for (const [method, url] of [
      ['GET', '/api/v1/trading/orders/ord_%00'],
      ['DELETE', '/api/v1/trading/orders/ord_%00'],
      ['GET', '/api/v1/trading/orders?before=ord_%00'],
      ['GET', '/api/v1/trading/fills?before=fil_%00'],
      ['GET', '/api/v1/trading/fills?orderId=ord_%00'],
    ] as const) {
      const res = await a.app.inject({ method, url, headers: s.headers });
      expect(res.statusCode, `${method} ${url}`).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
    // Well-formed ids still work, and unknown ones are still 404.
    expect((await get(a, s, `/api/v1/trading/orders/${placed.json().id}`)).statusCode).toBe(200);
    expect((await get(a, s, '/api/v1/trading/orders/ord_00000000000000000000000000')).statusCode).toBe(404);
    expect((await get(a, s, `/api/v1/trading/orders?before=${placed.json().id}`)).statusCode).toBe(200);
  });

  it('candle times beyond 2^53 are 400 validation_failed, not a store error', async () => {
    const s = await trader(a);
    for (const q of ['from=99999999999999999999', 'to=99999999999999999999', 'from=0&to=9007199254740992']) {
      const res = await get(a, s, `/api/v1/market/candles/MOON-USDC?${q}`);
      expect(res.statusCode, q).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
    expect((await get(a, s, `/api/v1/market/candles/MOON-USDC?from=0&to=${Number.MAX_SAFE_INTEGER}`)).statusCode).toBe(200);
  });

  it('a market delisted and relisted through one server trades on the other, with the new terms', async () => {
    const admin = await sessionFor(a, { role: 'admin' });
    expect((await a.app.inject({ method: 'POST', url: '/api/v1/admin/assets', headers: admin.headers, payload: { symbol: 'STAR', name: 'Star', decimals: 6 } })).statusCode).toBe(201);
    const list = (tickSize: string) =>
      a.app.inject({ method: 'POST', url: '/api/v1/admin/markets', headers: admin.headers, payload: { base: 'STAR', quote: 'USDC', tickSize, lotSize: '0.01', minNotional: '0.01' } });
    expect((await list('0.1')).statusCode).toBe(201);
    const s = await trader(b);
    const star = (price: string) => post(b, s, { market: 'STAR-USDC', side: 'buy', price, quantity: '1' });
    expect((await star('1.1')).statusCode).toBe(201); // B has seen the market trading, tick 0.1
    expect((await a.app.inject({ method: 'DELETE', url: '/api/v1/admin/markets/STAR-USDC', headers: admin.headers })).statusCode).toBe(200);
    // B learns of the delisting (its order is refused) and has seen the market delisted since.
    expect((await star('1.1')).statusCode).toBe(400);
    expect((await star('1.1')).statusCode).toBe(400);
    expect((await get(b, s, '/api/v1/market/orderbook/STAR-USDC')).statusCode).toBe(200);
    // Relisted through A with a finer tick: B must take orders again, on the new terms.
    expect((await list('0.01')).statusCode).toBe(201);
    const res = await star('1.01');
    expect(res.statusCode, JSON.stringify(res.json())).toBe(201);
  });

  it('a halt set through one server’s shared state stops orders on the other', async () => {
    const s = await trader(b);
    await setHalt(a.services.state, { market: 'MOON-USDC', reason: 'drill', by: 'test', at: Date.now() });
    try {
      const res = await post(b, s, { side: 'buy', price: '1', quantity: '1' });
      expect(res.statusCode).toBe(503);
      expect(res.json().code).toBe('trading_halted');
    } finally {
      await clearHalt(a.services.state, 'MOON-USDC');
    }
    expect((await post(b, s, { side: 'buy', price: '1', quantity: '1' })).statusCode).toBe(201);
  });
});
