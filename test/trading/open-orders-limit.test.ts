import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { fund, MOON } from '../support/trading.js';

/**
 * MOONDRAFT_MAX_OPEN_ORDERS: an account rests at most that many orders per market (or its admin
 * override, PUT /api/v1/admin/accounts/:address/open-orders-limit). Run on the
 * server thread's sequencer, on the order thread, and on two scale-out servers sharing one
 * PostgreSQL (where every other request goes to the other server, whose book is behind).
 */
type Session = Awaited<ReturnType<typeof sessionFor>>;
const LIMIT = '3';
const up = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

const setups: { name: string; threaded: boolean; skip?: boolean; start: () => Promise<TestServer[]> }[] = [
  { name: 'the sequencer in the server thread', threaded: false, start: async () => [await startTestServer({ env: { MOONDRAFT_MAX_OPEN_ORDERS: LIMIT } })] },
  {
    name: 'the order thread',
    threaded: true,
    start: async () => [await startTestServer({ sqliteFile: true, env: { MOONDRAFT_ORDER_THREAD: 'on', MOONDRAFT_MAX_OPEN_ORDERS: LIMIT } })],
  },
  {
    name: 'two scale-out servers on one PostgreSQL',
    threaded: true, // as served: a server on PostgreSQL runs its order transactions on the order thread
    skip: !up,
    start: async () => {
      const isolation = newIsolation();
      const a = await startTestServer({ backend: 'scaleout', isolation, env: { MOONDRAFT_MAX_OPEN_ORDERS: LIMIT } });
      const b = await startTestServer({ backend: 'scaleout', isolation, dataDir: a.dataDir, env: { MOONDRAFT_MAX_OPEN_ORDERS: LIMIT } });
      const close = a.close.bind(a);
      a.close = async () => {
        await b.close();
        await close();
        await dropSchema(isolation.pgSchema);
      };
      return [a, b];
    },
  },
];

describe.each(setups)('open orders per account and market: $name', ({ start, threaded, skip }) => {
  if (skip) {
    it.skip('needs PostgreSQL and Redis', () => {});
    return;
  }
  let servers: TestServer[];
  let admin: Session;
  let turn = 0;
  /** The next server in turn (the same one unless scale-out). */
  const next = () => servers[turn++ % servers.length]!;
  const req = (method: string, url: string, s: Session, payload?: unknown) =>
    next().app.inject({ method: method as 'GET', url, headers: s.headers, ...(payload !== undefined ? { payload: payload as object } : {}) });
  const order = (s: Session, body: Record<string, unknown>) => req('POST', '/api/v1/trading/orders', s, { market: 'MOON-USDC', type: 'limit', ...body });
  async function trader(moon = 0): Promise<Session> {
    const s = await sessionFor(servers[0]!);
    expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: '1000' })).statusCode).toBe(200);
    if (moon > 0) await fund(servers[0]!.services.trading, s.account.id, 'MOON', MOON(moon));
    return s;
  }
  const book = ({ timestamp: _, ...rest }: { timestamp: number }) => rest;
  /** What the refusal must leave as it was: balances, open orders, both books. */
  const state = async (s: Session) => ({
    balances: (await req('GET', '/api/v1/account/balances', s)).json(),
    open: (await req('GET', '/api/v1/trading/orders?status=open', s)).json().orders.map((o: { id: string }) => o.id).sort(),
    moon: book((await req('GET', '/api/v1/market/orderbook/MOON-USDC', s)).json()),
    star: book((await req('GET', '/api/v1/market/orderbook/STAR-USDC', s)).json()),
  });

  beforeAll(async () => {
    servers = await start();
    for (const server of servers) expect(server.services.trading.orders.threaded).toBe(threaded);
    admin = await sessionFor(servers[0]!, { role: 'admin' });
    for (const symbol of ['MOON', 'STAR']) {
      const asset = await servers[0]!.app.inject({ method: 'POST', url: '/api/v1/admin/assets', headers: admin.headers, payload: { symbol, name: symbol, decimals: 6 } });
      expect(asset.statusCode).toBe(201);
      const market = await servers[0]!.app.inject({ method: 'POST', url: '/api/v1/admin/markets', headers: admin.headers, payload: { base: symbol, quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1' } });
      expect(market.statusCode).toBe(201);
    }
  });
  afterAll(() => servers?.[0]?.close());

  it('refuses the resting order past the cap and changes nothing; orders that do not rest, cancels and other markets go on', async () => {
    const t = await trader(10);
    const maker = await trader(10);

    const rested: string[] = [];
    for (const price of ['1', '0.9', '0.8']) {
      const r = await order(t, { side: 'buy', price, quantity: '2' });
      expect(r.statusCode).toBe(201);
      expect(r.json()).toMatchObject({ status: 'open' });
      rested.push(r.json().id);
    }

    // A maker's ask that the next order would partly fill: the refusal must not fill it.
    expect((await order(maker, { side: 'sell', price: '2', quantity: '1' })).statusCode).toBe(201);
    const before = await state(t);
    for (const body of [
      { side: 'buy', price: '0.7', quantity: '2' },
      { side: 'buy', price: '2', quantity: '3' }, // would fill 1 and rest 2
    ]) {
      const refused = await order(t, body);
      expect(refused.statusCode).toBe(422);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(refused.json()).toMatchObject({ code: 'open_orders_limit_exceeded', status: 422, limit: 3, open: 3 });
      expect(await state(t)).toEqual(before);
    }

    // Orders that never rest are not refused: one that fills in full, IOC, FOK, market, a position close.
    const filled = await order(t, { side: 'buy', price: '2', quantity: '0.5' });
    expect(filled.statusCode).toBe(201);
    expect(filled.json()).toMatchObject({ status: 'filled' });
    expect((await order(t, { side: 'buy', price: '0.5', quantity: '4', timeInForce: 'IOC' })).json()).toMatchObject({ status: 'expired' });
    expect((await order(t, { side: 'buy', price: '2', quantity: '4', timeInForce: 'FOK' })).json()).toMatchObject({ status: 'expired' });
    const market = await order(t, { side: 'buy', type: 'market', quantity: '0.5' });
    expect(market.statusCode).toBe(201);
    expect(market.json()).toMatchObject({ status: 'filled' });
    // A position close is a market order: it sells t's 11 MOON to another account's bid.
    const bidder = await trader();
    expect((await order(bidder, { side: 'buy', price: '1.5', quantity: '20' })).statusCode).toBe(201);
    const close = await req('POST', '/api/v1/trading/positions/MOON/close', t);
    expect(close.statusCode, close.body).toBe(201);
    expect(close.json()).toMatchObject({ status: 'filled' });
    expect((await state(t)).open).toEqual([...rested].sort());

    // Another market has its own count.
    expect((await order(t, { market: 'STAR-USDC', side: 'buy', price: '1', quantity: '2' })).statusCode).toBe(201);

    // Cancelling one makes room for one.
    expect((await req('DELETE', `/api/v1/trading/orders/${rested[0]}`, t)).statusCode).toBe(200);
    expect((await order(t, { side: 'buy', price: '0.7', quantity: '2' })).statusCode).toBe(201);
    expect((await order(t, { side: 'buy', price: '0.6', quantity: '2' })).json()).toMatchObject({ code: 'open_orders_limit_exceeded', limit: 3, open: 3 });
  });

  it("an admin's per-account override raises or lowers the cap on every server; a lowered one leaves resting orders in place", async () => {
    const cap = (s: Session, maxOpenOrders: number | null) => req('PUT', `/api/v1/admin/accounts/${s.account.wallet}/open-orders-limit`, admin, { maxOpenOrders });
    const raised = await trader();
    const lowered = await trader();
    // Far below the rest of the book, so nothing here trades.
    const bid = (s: Session, i: number) => order(s, { side: 'buy', price: (0.1 + i * 0.0001).toFixed(4), quantity: '10' });

    // Raised to 5: a fourth and fifth order rest where the default (3) refuses them; the sixth is refused.
    expect((await cap(raised, 5)).json()).toEqual({ maxOpenOrders: 5, default: 3, overridden: true });
    for (let i = 0; i < 5; i++) expect((await bid(raised, i)).json()).toMatchObject({ status: 'open' });
    expect((await bid(raised, 5)).json()).toMatchObject({ code: 'open_orders_limit_exceeded', limit: 5, open: 5 });
    expect((await req('GET', '/api/v1/account/trading-limit', raised)).json()).toMatchObject({ maxOpenOrders: 5 });

    // Lowered to 1 with 3 resting: the 3 stay, no new resting order is accepted; orders that do not rest still are.
    for (let i = 0; i < 3; i++) expect((await bid(lowered, i)).statusCode).toBe(201);
    expect((await cap(lowered, 1)).json()).toEqual({ maxOpenOrders: 1, default: 3, overridden: true });
    const resting = (await req('GET', '/api/v1/trading/orders?status=open&market=MOON-USDC', lowered)).json().orders.map((o: { id: string }) => o.id);
    expect(resting).toHaveLength(3);
    expect((await bid(lowered, 3)).json()).toMatchObject({ code: 'open_orders_limit_exceeded', limit: 1, open: 3 });
    expect((await order(lowered, { side: 'buy', price: '0.5', quantity: '2', timeInForce: 'IOC' })).json()).toMatchObject({ status: 'expired' });
    // Cancelling down to 1 is not enough (1 ≥ 1); to 0 makes room for one.
    expect((await req('DELETE', `/api/v1/trading/orders/${resting[0]}`, lowered)).statusCode).toBe(200);
    expect((await req('DELETE', `/api/v1/trading/orders/${resting[1]}`, lowered)).statusCode).toBe(200);
    expect((await bid(lowered, 4)).json()).toMatchObject({ code: 'open_orders_limit_exceeded', limit: 1, open: 1 });
    expect((await req('DELETE', `/api/v1/trading/orders/${resting[2]}`, lowered)).statusCode).toBe(200);
    expect((await bid(lowered, 5)).json()).toMatchObject({ status: 'open' });

    // Cleared: back to the default for the next order.
    expect((await cap(raised, null)).json()).toEqual({ maxOpenOrders: 3, default: 3, overridden: false });
    expect((await bid(raised, 6)).json()).toMatchObject({ code: 'open_orders_limit_exceeded', limit: 3, open: 5 });
    expect((await cap(lowered, null)).statusCode).toBe(200);
    expect((await bid(lowered, 6)).json()).toMatchObject({ status: 'open' });
    await req('DELETE', '/api/v1/trading/orders', raised);
    await req('DELETE', '/api/v1/trading/orders', lowered);
  });

  it('does not count the own resting orders that self-trade prevention cancels', async () => {
    const t = await trader();
    await fund(servers[0]!.services.trading, t.account.id, 'STAR', MOON(10));
    // STAR-USDC, above the one bid the test before left there.
    const star = (body: Record<string, unknown>) => order(t, { market: 'STAR-USDC', ...body });
    for (const price of ['3', '2.9', '2.8']) expect((await star({ side: 'buy', price, quantity: '2' })).statusCode).toBe(201);
    // Crosses its own bid at 3 only (cancel_maker): that one goes, this one rests: still 3.
    const sell = await star({ side: 'sell', price: '2.95', quantity: '2', selfTradePrevention: 'cancel_maker' });
    expect(sell.statusCode).toBe(201);
    expect(sell.json()).toMatchObject({ status: 'open' });
    expect((await req('GET', '/api/v1/trading/orders?status=open&market=STAR-USDC', t)).json().orders).toHaveLength(3);
    // With cancel_taker, the order stops at its own bid and does not rest: not refused either.
    expect((await star({ side: 'sell', price: '2.9', quantity: '2', selfTradePrevention: 'cancel_taker' })).json()).toMatchObject({ status: 'cancelled' });
    expect((await star({ side: 'sell', price: '5', quantity: '2' })).json()).toMatchObject({ code: 'open_orders_limit_exceeded', limit: 3, open: 3 });
  });
});
