import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrderThread } from '../../src/trading/orders/thread.js';
import { clearHalt, setHalt } from '../../src/trading/index.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { loadConfig } from '../../src/config/index.js';
import { openSharedTestStore } from '../support/stores.js';
import { fund, tradingOn } from '../support/trading.js';

type Session = Awaited<ReturnType<typeof sessionFor>>;

/**
 * The order thread as `serve` runs it (SQLite file, MOONDRAFT_ORDER_THREAD on): orders, their
 * audit records and metrics, halts set in the server thread, and the thread's death.
 * (The HTTP trading suite also runs whole against it: http-thread.test.ts.)
 */
describe('the order thread', () => {
  let server: TestServer;
  let admin: Session;
  const req = (method: string, url: string, s?: Session, payload?: unknown) =>
    server.app.inject({ method: method as 'GET', url, ...(s ? { headers: s.headers } : {}), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const order = (s: Session, body: Record<string, unknown>) => req('POST', '/api/v1/trading/orders', s, { market: 'MOON-USDC', type: 'limit', ...body });
  async function trader(usdc: string, moon?: string): Promise<Session> {
    const s = await sessionFor(server);
    expect((await req('POST', '/api/v1/sandbox/faucet', s, { asset: 'USDC', amount: usdc })).statusCode).toBe(200);
    if (moon) await fund(server.services.trading, s.account.id, 'MOON', BigInt(Math.round(Number(moon) * 1e6)));
    return s;
  }
  const metric = async (name: string) => {
    const text = await server.services.metrics.registry.getSingleMetricAsString(name);
    return Object.fromEntries([...text.matchAll(/^(\S+) (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
  };

  beforeAll(async () => {
    server = await startTestServer({ sqliteFile: true, env: { MOONDRAFT_ORDER_THREAD: 'on' } });
    admin = await sessionFor(server, { role: 'admin' });
    expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'MOON', name: 'Moon', decimals: 6 })).statusCode).toBe(201);
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'MOON', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1' })).statusCode).toBe(201);
  });
  afterAll(() => server.close());

  it('runs on its own thread and logs through the server', () => {
    expect(server.services.trading.orders.threaded).toBe(true);
    expect(server.services.trading.orders.executor).toBeInstanceOf(OrderThread);
    // Its log lines land where the server's go.
    expect(server.logs.some((l) => l.msg === 'order thread ready')).toBe(true);
  });

  it('commits orders and fills, serves depth, counts them, and audits them in the one chain', async () => {
    const maker = await trader('10', '5');
    const taker = await trader('100');
    const ordersBefore = await metric('moondraft_orders_total');
    const auditBefore = (await metric('moondraft_audit_records_total'))['moondraft_audit_records_total{category="trading"}'] ?? 0;

    expect((await order(maker, { side: 'sell', price: '2', quantity: '3' })).statusCode).toBe(201);
    const bid = await order(taker, { side: 'buy', price: '2', quantity: '1' });
    expect(bid.statusCode).toBe(201);
    expect(bid.json()).toMatchObject({ status: 'filled', fills: [{ price: '2', quantity: '1' }] });

    // The server thread's copy of the book follows the order thread's commits.
    const book = await req('GET', '/api/v1/market/orderbook/MOON-USDC', taker);
    expect(book.json()).toMatchObject({ asks: [{ price: '2', quantity: '2' }], bids: [] });

    const orders = await metric('moondraft_orders_total');
    expect((orders['moondraft_orders_total{status="open"}'] ?? 0) - (ordersBefore['moondraft_orders_total{status="open"}'] ?? 0)).toBe(1);
    expect((orders['moondraft_orders_total{status="filled"}'] ?? 0) - (ordersBefore['moondraft_orders_total{status="filled"}'] ?? 0)).toBe(1);
    // Two placements and a fill recorded from each side: four trading records, counted here.
    const audited = (await metric('moondraft_audit_records_total'))['moondraft_audit_records_total{category="trading"}'];
    expect(audited! - auditBefore).toBe(4);

    await server.services.audit.flush();
    const report = await server.services.audit.verify();
    expect(report).toMatchObject({ ok: true });
    const fills = await server.services.store.db.selectFrom('audit_events').select(['type', 'account_id']).where('type', '=', 'trading.fill').execute();
    expect(fills.map((f) => f.account_id).sort()).toEqual([maker.account.id, taker.account.id].sort());
    expect(await server.services.trading.ledger.verify()).toMatchObject({ ok: true });
  });

  it('refuses orders while a halt set in the server thread stands, and trades once it is lifted', async () => {
    const s = await trader('100');
    expect((await order(s, { side: 'buy', price: '1', quantity: '1' })).statusCode).toBe(201);
    await setHalt(server.services.state, { market: 'MOON-USDC', reason: 'incident', by: 'admin', at: Date.now() });
    try {
      const refused = await order(s, { side: 'buy', price: '1', quantity: '1' });
      expect(refused.statusCode).toBe(503);
      expect(refused.json()).toMatchObject({ code: 'trading_halted' });
      // The halt is also what the order thread reads when its batch begins: a placement that
      // passed the server thread's check before the halt is refused there (the halt-key write
      // count moved, so it asks again).
      const outcome = await server.services.trading.orders.executor.submit({
        kind: 'place',
        markets: ['MOON-USDC'],
        caller: { accountId: s.account.id, role: 'trader', actor: { kind: 'session', id: s.sessionId, accountId: s.account.id } },
        order: { market: 'MOON-USDC', side: 'buy', type: 'limit', price: 1_000_000n, quantity: 1_000_000n, timeInForce: 'GTC', selfTradePrevention: 'cancel_maker', clientOrderId: null },
      });
      expect(outcome).toMatchObject({ ok: false, code: 'trading_halted' });
    } finally {
      await clearHalt(server.services.state, 'MOON-USDC');
    }
    expect((await order(s, { side: 'buy', price: '1', quantity: '1' })).statusCode).toBe(201);
  });

  it('a thread that dies is replaced: the new one rebuilds the books from the store and trades on', async () => {
    const maker = await trader('10', '5');
    const taker = await trader('100');
    // Below the earlier tests' asks (2) and above their bids (1): the next bid meets this one.
    expect((await order(maker, { side: 'sell', price: '1.5', quantity: '2' })).statusCode).toBe(201);
    const thread = server.services.trading.orders.executor as OrderThread;
    await thread.restart();
    expect(server.logs.some((l) => l.msg === 'order thread exited; starting a new one')).toBe(true);
    const bid = await order(taker, { side: 'buy', price: '1.5', quantity: '1' });
    expect(bid.statusCode).toBe(201);
    expect(bid.json()).toMatchObject({ status: 'filled', fills: [{ price: '1.5', quantity: '1' }] });
    expect(await server.services.trading.ledger.verify()).toMatchObject({ ok: true });
  });

  it('while a new thread starts, orders are refused with 503 and nothing runs twice', async () => {
    const s = await trader('100');
    const thread = server.services.trading.orders.executor as OrderThread;
    const restarted = thread.restart();
    // The old thread is gone and the new one not started yet (it starts a second later).
    await new Promise((r) => setTimeout(r, 200));
    const during = await order(s, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'during-restart' });
    expect(during.statusCode).toBe(503);
    expect(during.json()).toMatchObject({ code: 'service_unavailable', retryAfter: 1 });
    expect(during.headers['retry-after']).toBe('1'); // as every other 503 that a retry soon can clear
    // A book this server has no copy of cannot be read then either: 503, not an empty book.
    expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'NEWT', name: 'Newt', decimals: 6 })).statusCode).toBe(201);
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'NEWT', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1' })).statusCode).toBe(201);
    const depth = await req('GET', '/api/v1/market/orderbook/NEWT-USDC', s);
    expect(depth.statusCode).toBe(503);
    expect(depth.headers['retry-after']).toBe('1');
    await restarted;
    expect((await req('GET', '/api/v1/market/orderbook/NEWT-USDC', s)).json()).toMatchObject({ bids: [], asks: [] });
    const after = await order(s, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'during-restart' });
    expect(after.statusCode).toBe(201); // placed now, not a replay of something the 503 left behind
    const rows = await server.services.store.db.selectFrom('orders').select('id').where('account_id', '=', s.account.id).execute();
    expect(rows).toHaveLength(1);
  });
});

describe('an order thread that cannot start', () => {
  it('fails the start with its reason, and leaves nothing running', async () => {
    const shared = await openSharedTestStore('sqlite');
    try {
      // The thread resolves the keyring itself (it seals audit records): a bad master key stops it.
      const config = { ...loadConfig({ MOONDRAFT_DATA_DIR: shared.dataDir }), masterKey: 'not-a-keyring' };
      await expect(tradingOn(shared.store, { thread: { config, store: shared.options } })).rejects.toThrow(/order thread: /);
    } finally {
      await shared.close();
    }
  });
});
