import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import type { Store } from '../../store/db.js';
import { openSharedTestStore, openTestStore, storeBackends } from '../../../test/support/stores.js';
import { loadConfig } from '../../config/index.js';
import { callerFor, fund, listMoon, MOON, tradingOn, USDC } from '../../../test/support/trading.js';
import { clearHalt, haltKeys, setHalt } from '../index.js';
import { SYSTEM_OWNERS } from '../ledger/index.js';
import type { PlaceOrderInput, TradingEvent } from './types.js';

let n = 0;
const uid = (p: string) => `acc_${p}_${++n}_${Math.random().toString(36).slice(2, 8)}`;

/**
 * Every backend twice: the sequencer in the caller's thread, and on the order thread (as `serve`
 * runs it), which opens its own connection: to a SQLite file, or to the same PostgreSQL schema.
 */
const variants = (await storeBackends()).flatMap((backend) => [
  { name: `${backend}, in this thread`, backend, thread: false },
  { name: `${backend}, on the order thread`, backend, thread: true },
]);

describe.each(variants)('order service on $name', ({ backend, thread }) => {
  let store: Store;
  let closeStore: () => Promise<void>;
  let trading: Awaited<ReturnType<typeof tradingOn>>;
  const clock = new ManualClock(Date.UTC(2026, 2, 1, 12, 0, 0));
  /** Tests that only apply with the sequencer in this thread (defined only there: never skipped). */
  const itInThisThread = (name: string, fn: () => Promise<void>) => {
    if (!thread) it(name, fn);
  };

  beforeAll(async () => {
    if (thread) {
      const shared = await openSharedTestStore(backend);
      store = shared.store;
      closeStore = () => shared.close();
      trading = await tradingOn(store, { clock, thread: { config: loadConfig({ MOONDRAFT_DATA_DIR: shared.dataDir }), store: shared.options } });
    } else {
      store = await openTestStore(backend);
      closeStore = () => store.close();
      trading = await tradingOn(store, { clock });
    }
    expect(trading.orders.threaded).toBe(thread);
    await listMoon(trading);
  });
  afterAll(async () => {
    await trading.close();
    await closeStore();
  });
  beforeEach(async () => {
    // Each test trades against an empty book.
    for (const o of await store.db.selectFrom('orders').select(['account_id']).where('status', 'in', ['open', 'partially_filled']).distinct().execute()) {
      await trading.orders.cancelAll(callerFor(o.account_id));
    }
  });

  const place = (accountId: string, o: Partial<PlaceOrderInput>, role: 'trader' | 'admin' = 'trader') =>
    trading.orders.place(callerFor(accountId, role), { market: 'MOON-USDC', side: 'buy', type: 'limit', quantity: '1', ...o } as PlaceOrderInput);
  const balance = async (owner: string, asset: string) => (await trading.ledger.balances(owner)).find((b) => b.asset === asset) ?? { asset, available: 0n, held: 0n };
  const verified = async () => {
    const r = await trading.ledger.verify();
    expect(r.violation).toBeUndefined();
    expect(r.ok).toBe(true);
  };

  it('matches a crossing order at the maker price, settles both sides with fees, and verifies', async () => {
    const seller = uid('s');
    const buyer = uid('b');
    await fund(trading, seller, 'MOON', MOON(10));
    await fund(trading, buyer, 'USDC', USDC(1000));
    const feesBefore = (await balance(SYSTEM_OWNERS.fees, 'USDC')).available;

    const ask = await place(seller, { side: 'sell', price: '5', quantity: '2' });
    expect(ask).toMatchObject({ ok: true, value: { order: { status: 'open', remaining: MOON(2) }, fills: [] } });
    expect(await balance(seller, 'MOON')).toMatchObject({ available: MOON(8), held: MOON(2) });

    const bid = await place(buyer, { side: 'buy', price: '6', quantity: '1' });
    if (!bid.ok) throw new Error(bid.detail);
    expect(bid.value.order).toMatchObject({ status: 'filled', filled: MOON(1), remaining: 0n, notional: USDC(5), fees: USDC(0.01) });
    expect(bid.value.fills).toHaveLength(1);
    expect(bid.value.fills[0]).toMatchObject({ price: USDC(5), quantity: MOON(1), takerFee: USDC(0.01), makerFee: USDC(0.005) });

    expect(await balance(buyer, 'USDC')).toMatchObject({ available: USDC(994.99), held: 0n });
    expect(await balance(buyer, 'MOON')).toMatchObject({ available: MOON(1) });
    expect(await balance(seller, 'MOON')).toMatchObject({ available: MOON(8), held: MOON(1) });
    expect(await balance(seller, 'USDC')).toMatchObject({ available: USDC(4.995) });
    expect((await balance(SYSTEM_OWNERS.fees, 'USDC')).available - feesBefore).toBe(USDC(0.015));

    const makerOrder = await trading.queries.order(seller, ask.ok ? ask.value.order.id : '');
    expect(makerOrder).toMatchObject({ status: 'partially_filled', filled: MOON(1), remaining: MOON(1), fees: USDC(0.005) });
    const snap = await trading.orders.snapshot('MOON-USDC');
    expect(snap?.asks).toEqual([{ price: USDC(5), quantity: MOON(1), orders: 1 }]);
    await verified();

    const positions = await trading.portfolios.positions(buyer);
    expect(positions).toEqual([expect.objectContaining({ asset: 'MOON', quantity: MOON(1), costBasis: USDC(5.01), averageCost: USDC(5.01), lastPrice: USDC(5), value: USDC(5), unrealizedPnl: -USDC(0.01) })]);
    const sellerPos = await trading.portfolios.positions(seller);
    expect(sellerPos[0]).toMatchObject({ quantity: MOON(9), costBasis: 0n, realizedPnl: USDC(4.995) });
  });

  it('refuses buying beyond the balance with insufficient_funds and changes nothing', async () => {
    const seller = uid('s');
    const buyer = uid('b');
    await fund(trading, seller, 'MOON', MOON(10));
    await fund(trading, buyer, 'USDC', USDC(10));
    await place(seller, { side: 'sell', price: '5', quantity: '3' });
    const before = { orders: await store.db.selectFrom('orders').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow(), snap: await trading.orders.snapshot('MOON-USDC') };
    const r = await place(buyer, { side: 'buy', price: '5', quantity: '2' }); // 10 USDC + 0.02 fee > 10
    expect(r).toMatchObject({ ok: false, code: 'insufficient_funds' });
    const market = await place(buyer, { side: 'buy', type: 'market', price: undefined, quantity: '3', timeInForce: 'IOC' });
    expect(market).toMatchObject({ ok: false, code: 'insufficient_funds' });
    const sell = await place(buyer, { side: 'sell', price: '5', quantity: '1' });
    expect(sell).toMatchObject({ ok: false, code: 'insufficient_funds' });
    expect(await balance(buyer, 'USDC')).toMatchObject({ available: USDC(10), held: 0n });
    expect(await store.db.selectFrom('orders').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).toEqual(before.orders);
    expect((await trading.orders.snapshot('MOON-USDC'))?.asks).toEqual(before.snap?.asks);
    // Exactly enough goes through.
    const exact = await place(buyer, { side: 'buy', price: '4.99', quantity: '2' }); // rests: 9.98 + 0.01996 fee bound
    expect(exact).toMatchObject({ ok: true, value: { order: { status: 'open' } } });
    expect(await balance(buyer, 'USDC')).toMatchObject({ available: USDC(10) - USDC(9.98) - 19_960n, held: USDC(9.98) + 19_960n });
    await verified();
  });

  it('holds for a resting buy cover every partial fill and are released in full on cancel', async () => {
    const maker = uid('m');
    const taker = uid('t');
    await fund(trading, maker, 'USDC', USDC(100));
    await fund(trading, taker, 'MOON', MOON(10));
    const bid = await place(maker, { side: 'buy', price: '3.3333', quantity: '7.77' });
    if (!bid.ok) throw new Error(bid.detail);
    // Each sale at least the market's minimum order (1 USDC), with fills that round.
    for (const q of ['0.31', '1.23', '0.99', '2']) {
      const r = await place(taker, { side: 'sell', type: 'market', price: undefined, quantity: q });
      expect(r.ok).toBe(true);
    }
    await verified();
    const cancelled = await trading.orders.cancel(callerFor(maker), bid.value.order.id);
    expect(cancelled).toMatchObject({ ok: true, value: { status: 'cancelled', remaining: 0n } });
    expect((await balance(maker, 'USDC')).held).toBe(0n);
    const hold = await store.db.selectFrom('holds').selectAll().where('id', '=', bid.value.order.id).executeTakeFirstOrThrow();
    expect(hold).toMatchObject({ status: 'closed' });
    await verified();
    expect(await trading.orders.cancel(callerFor(maker), bid.value.order.id)).toMatchObject({ ok: false, code: 'conflict' });
    expect(await trading.orders.cancel(callerFor(taker), bid.value.order.id)).toMatchObject({ ok: false, code: 'not_found' });
  });

  it('IOC and FOK through the service: remainders never rest, a killed FOK writes no fills', async () => {
    const maker = uid('m');
    const taker = uid('t');
    await fund(trading, maker, 'MOON', MOON(5));
    await fund(trading, taker, 'USDC', USDC(100));
    await place(maker, { side: 'sell', price: '2', quantity: '1' });
    const fok = await place(taker, { side: 'buy', price: '2', quantity: '2', timeInForce: 'FOK' });
    expect(fok).toMatchObject({ ok: true, value: { order: { status: 'expired', reason: 'fok_unfillable', filled: 0n }, fills: [] } });
    const ioc = await place(taker, { side: 'buy', price: '2', quantity: '2', timeInForce: 'IOC' });
    expect(ioc).toMatchObject({ ok: true, value: { order: { status: 'expired', reason: 'ioc_remainder', filled: MOON(1), remaining: 0n } } });
    expect((await balance(taker, 'USDC')).held).toBe(0n);
    expect((await trading.orders.snapshot('MOON-USDC'))?.bids).toEqual([]);
    await verified();
  });

  it('self-trade prevention cancels the own resting order and releases its hold', async () => {
    const me = uid('me');
    await fund(trading, me, 'MOON', MOON(5));
    await fund(trading, me, 'USDC', USDC(100));
    const ask = await place(me, { side: 'sell', price: '2', quantity: '1' });
    const bid = await place(me, { side: 'buy', price: '2', quantity: '1' });
    expect(bid).toMatchObject({ ok: true, value: { order: { status: 'open' }, fills: [] } });
    expect(await trading.queries.order(me, ask.ok ? ask.value.order.id : '')).toMatchObject({ status: 'cancelled', reason: 'self_trade', cancelActor: { kind: 'system' } });
    expect((await balance(me, 'MOON')).held).toBe(0n);
    await verified();
  });

  it('a repeated clientOrderId returns the original order, also under concurrent duplicates', async () => {
    const acc = uid('idem');
    await fund(trading, acc, 'USDC', USDC(100));
    const first = await place(acc, { side: 'buy', price: '1', quantity: '2', clientOrderId: 'c-1' });
    const again = await place(acc, { side: 'buy', price: '1', quantity: '2', clientOrderId: 'c-1' });
    expect(first.ok && again.ok && again.value.order.id === first.value.order.id && again.value.replayed).toBe(true);

    const racing = await Promise.all(Array.from({ length: 8 }, () => place(acc, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'c-race' })));
    const ids = new Set(racing.map((r) => (r.ok ? r.value.order.id : r.code)));
    expect(ids.size).toBe(1);
    const rows = await store.db.selectFrom('orders').select('id').where('account_id', '=', acc).where('client_order_id', '=', 'c-race').execute();
    expect(rows).toHaveLength(1);
    expect((await balance(acc, 'USDC')).held).toBe(USDC(2) + USDC(0.004) + USDC(1) + USDC(0.002));
  });

  it('keeps clientOrderIds per account: the same ids from two accounts in one batch are separate orders', async () => {
    const a = uid('idem-a');
    const b = uid('idem-b');
    for (const acc of [a, b]) await fund(trading, acc, 'USDC', USDC(100));
    // a's "x" and b's "y" exist; then both ids arrive from both accounts together.
    const ax = await place(a, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'x' });
    const by = await place(b, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'y' });
    const [ax2, ay, bx, by2] = await Promise.all([
      place(a, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'x' }),
      place(a, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'y' }),
      place(b, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'x' }),
      place(b, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'y' }),
    ]);
    const id = (r: typeof ax) => (r.ok ? r.value.order.id : r.code);
    expect(id(ax2)).toBe(id(ax));
    expect(id(by2)).toBe(id(by));
    expect(ay.ok && !ay.value.replayed && bx.ok && !bx.value.replayed).toBe(true);
    expect(new Set([id(ax), id(by), id(ay), id(bx)]).size).toBe(4);
    const rows = await store.db.selectFrom('orders').select(['account_id', 'client_order_id']).where('account_id', 'in', [a, b]).orderBy('account_id').orderBy('client_order_id').execute();
    expect(rows.map((r) => `${r.account_id === a ? 'a' : 'b'}:${r.client_order_id}`)).toEqual(['a:x', 'a:y', 'b:x', 'b:y']);
  });

  it('lists an account\'s orders and fills newest first, by page, status, market and order', async () => {
    const maker = uid('hm');
    const taker = uid('ht');
    await fund(trading, maker, 'MOON', MOON(10));
    await fund(trading, taker, 'USDC', USDC(100));
    const asks: string[] = [];
    for (const price of ['1', '2', '3']) {
      clock.advance(1);
      const r = await place(maker, { side: 'sell', price, quantity: '1' });
      asks.push(r.ok ? r.value.order.id : r.code);
    }
    clock.advance(1);
    const buy = await place(taker, { side: 'buy', price: '3', quantity: '3' });
    expect(buy).toMatchObject({ ok: true, value: { order: { status: 'filled' } } });
    const buyId = buy.ok ? buy.value.order.id : '';
    const q = trading.queries;

    expect((await q.orders(maker, { limit: 10 })).map((o) => o.id)).toEqual([...asks].reverse());
    const page1 = await q.orders(maker, { limit: 2 });
    expect(page1.map((o) => o.id)).toEqual([asks[2], asks[1]]);
    expect((await q.orders(maker, { limit: 2, before: page1[1]!.id })).map((o) => o.id)).toEqual([asks[0]]);
    expect(await q.orders(maker, { limit: 10, status: 'open' })).toEqual([]);
    expect(await q.orders(maker, { limit: 10, status: 'closed' })).toHaveLength(3);
    expect(await q.orders(maker, { limit: 10, market: 'NOPE-USDC' })).toEqual([]);
    expect((await q.orders(taker, { limit: 10 })).map((o) => o.id)).toEqual([buyId]);

    const takerFills = await q.accountFills(taker, { limit: 10 });
    expect(takerFills.map((f) => [f.liquidity, f.side, f.orderId, String(f.fill.price)])).toEqual([
      ['taker', 'buy', buyId, String(USDC(3))],
      ['taker', 'buy', buyId, String(USDC(2))],
      ['taker', 'buy', buyId, String(USDC(1))],
    ]);
    const makerFills = await q.accountFills(maker, { limit: 10, market: 'MOON-USDC' });
    expect(makerFills.map((f) => [f.liquidity, f.side, f.orderId])).toEqual([...asks].reverse().map((id) => ['maker', 'sell', id]));
    expect(makerFills.map((f) => f.fill.id)).toEqual(takerFills.map((f) => f.fill.id));
    expect((await q.accountFills(maker, { limit: 10, orderId: asks[1] })).map((f) => f.orderId)).toEqual([asks[1]]);
    // By order: the taker's order has all three fills, newest first, paged like the rest; an order is
    // only seen by the account that placed it.
    const byOrder = await q.accountFills(taker, { limit: 10, orderId: buyId });
    expect(byOrder.map((f) => f.fill.id)).toEqual(takerFills.map((f) => f.fill.id));
    expect((await q.accountFills(taker, { limit: 10, orderId: buyId, before: byOrder[0]!.fill.id })).map((f) => f.fill.id)).toEqual(byOrder.slice(1).map((f) => f.fill.id));
    expect((await q.accountFills(taker, { limit: 1, orderId: buyId })).map((f) => f.fill.id)).toEqual([byOrder[0]!.fill.id]);
    expect(await q.accountFills(taker, { limit: 10, orderId: asks[1] })).toEqual([]);
    expect(await q.accountFills(maker, { limit: 10, orderId: buyId })).toEqual([]);
    expect(await q.accountFills(maker, { limit: 10, orderId: asks[1], market: 'NOPE-USDC' })).toEqual([]);
    expect((await q.accountFills(maker, { limit: 10, before: makerFills[0]!.fill.id })).map((f) => f.orderId)).toEqual([asks[1], asks[0]]);
    expect(await q.accountFills(maker, { limit: 10, market: 'NOPE-USDC' })).toEqual([]);
  });

  /** An account with 1,000 USDC and a daily limit of 10 USDC, facing 50 MOON offered at 1. */
  const limitedAccount = async (prefix: string) => {
    const acc = uid(prefix);
    const other = uid('cp');
    await fund(trading, acc, 'USDC', USDC(1000));
    await fund(trading, other, 'MOON', MOON(100));
    await trading.limits.setOverride(acc, '10', 'admin');
    await place(other, { side: 'sell', price: '1', quantity: '50' });
    return acc;
  };

  it('enforces the daily limit at its boundary: exactly at passes, one minor unit over is refused', async () => {
    const acc = await limitedAccount('lim');
    const trade = await place(acc, { side: 'buy', price: '1', quantity: '4' }); // trades 4
    expect(trade).toMatchObject({ ok: true, value: { order: { status: 'filled' } } });
    const resting = await place(acc, { side: 'buy', price: '0.5', quantity: '8' }); // rests 4 → used 8
    expect(resting.ok).toBe(true);
    const over = await place(acc, { side: 'buy', price: '1', quantity: '2.01' }); // 8 + 2.01 > 10
    expect(over).toMatchObject({ ok: false, code: 'daily_limit_exceeded' });
    const overByOne = await place(acc, { side: 'buy', price: '0.0001', quantity: '20000.01' }); // 2.000001: one minor over
    expect(overByOne).toMatchObject({ ok: false, code: 'daily_limit_exceeded' });
    const exactly = await place(acc, { side: 'buy', price: '1', quantity: '2' }); // 8 + 2 = 10
    expect(exactly).toMatchObject({ ok: true });
    expect(await trading.limits.status(acc, 'trader')).toMatchObject({ limit: USDC(10), traded: USDC(6), open: USDC(4), remaining: 0n, overridden: true });
    // Cancelling resting orders frees their share.
    expect((await trading.orders.cancelAll(callerFor(acc))).ok).toBe(true);
    expect(await place(acc, { side: 'buy', price: '1', quantity: '4' })).toMatchObject({ ok: true });
    // The window rolls: a day later the earlier trades no longer count.
    clock.advance(24 * 3_600_000 + 60_000);
    expect(await trading.limits.status(acc, 'trader')).toMatchObject({ traded: 0n });
    expect(await place(acc, { side: 'buy', price: '1', quantity: '10' })).toMatchObject({ ok: true });
    await trading.limits.setOverride(acc, null, 'admin');
    expect((await trading.limits.status(acc, 'trader')).limit).toBe(USDC(1_000_000));
  });

  it('frees the daily-limit share of own resting orders that self-trade prevention cancels', async () => {
    const acc = 'acc_lim_stp';
    await fund(trading, acc, 'USDC', USDC(100));
    await fund(trading, acc, 'MOON', MOON(10));
    await trading.limits.setOverride(acc, '10', 'admin');
    expect(await place(acc, { side: 'sell', price: '2', quantity: '4' })).toMatchObject({ ok: true, value: { order: { status: 'open' } } }); // rests 8
    // The buy cancels that sell (cancel_maker) and rests 8 in its place: 8 in all, within 10.
    const buy = await place(acc, { side: 'buy', price: '2', quantity: '4', selfTradePrevention: 'cancel_maker' });
    expect(buy).toMatchObject({ ok: true, value: { order: { status: 'open' } } });
    expect(await trading.limits.status(acc, 'trader')).toMatchObject({ traded: 0n, open: USDC(8), remaining: USDC(2) });
    await verified();
  });

  it('counts a trade in the daily limit for a full 24 h, to the second, and not a minute more', async () => {
    const acc = await limitedAccount('win');
    clock.advance(59_000 - (clock.now() % 60_000)); // 59 s into a minute
    expect(await place(acc, { side: 'buy', price: '1', quantity: '10' })).toMatchObject({ ok: true, value: { order: { status: 'filled' } } });
    clock.advance(24 * 3_600_000 - 59_000); // the start of that minute a day later: 23 h 59 min 1 s on
    expect((await trading.limits.status(acc, 'trader')).traded).toBe(USDC(10));
    expect(await place(acc, { side: 'buy', price: '1', quantity: '10' })).toMatchObject({ ok: false, code: 'daily_limit_exceeded' });
    clock.advance(60_000); // now more than 24 h on
    expect((await trading.limits.status(acc, 'trader')).traded).toBe(0n);
    expect(await place(acc, { side: 'buy', price: '1', quantity: '10' })).toMatchObject({ ok: true });
  });

  it('refuses new orders while halted (globally or per market) but lets cancels and retries through', async () => {
    const acc = uid('halt');
    await fund(trading, acc, 'USDC', USDC(100));
    const placed = await place(acc, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'h-1' });
    await setHalt(trading.state, { reason: 'test', by: 'admin', at: clock.now() });
    expect(await place(acc, { side: 'buy', price: '1', quantity: '1' })).toMatchObject({ ok: false, code: 'trading_halted', extra: { scope: 'global' } });
    const retry = await place(acc, { side: 'buy', price: '1', quantity: '1', clientOrderId: 'h-1' });
    expect(retry.ok && placed.ok && retry.value.order.id === placed.value.order.id).toBe(true);
    await clearHalt(trading.state);
    await setHalt(trading.state, { market: 'MOON-USDC', reason: 'test', by: 'admin', at: clock.now() });
    expect(await place(acc, { side: 'buy', price: '1', quantity: '1' })).toMatchObject({ ok: false, code: 'trading_halted', extra: { scope: 'market' } });
    expect(await trading.orders.cancelAll(callerFor(acc), 'MOON-USDC')).toMatchObject({ ok: true });
    await clearHalt(trading.state, 'MOON-USDC');
    expect(await place(acc, { side: 'buy', price: '1', quantity: '1' })).toMatchObject({ ok: true });
  });

  it('refuses an order queued before a halt was set, when its batch begins after it', async () => {
    const acc = uid('halt-queued');
    await fund(trading, acc, 'USDC', USDC(100));
    const state = trading.state;
    const getMany = state.getMany.bind(state);
    let armed = true;
    // The halt lands right after the order passed the check in place(), before its batch begins.
    state.getMany = async (keys) => {
      const values = await getMany(keys);
      if (armed && keys.includes(haltKeys.global)) {
        armed = false;
        await setHalt(state, { market: 'MOON-USDC', reason: 'incident', by: 'admin', at: clock.now() });
      }
      return values;
    };
    try {
      const r = await place(acc, { side: 'buy', price: '1', quantity: '1' });
      expect(r).toMatchObject({ ok: false, code: 'trading_halted', extra: { scope: 'market' } });
      expect(armed).toBe(false);
      expect(await balance(acc, 'USDC')).toMatchObject({ available: USDC(100), held: 0n });
      expect(await store.db.selectFrom('orders').select('id').where('account_id', '=', acc).execute()).toEqual([]);
    } finally {
      state.getMany = getMany;
      await clearHalt(state, 'MOON-USDC');
    }
  });

  // On the order thread, in-process state is read through its write counter (it cannot fail).
  itInThisThread('cancels in a batch go through when shared state fails after an order was queued', async () => {
    const acc = uid('halt-outage');
    await fund(trading, acc, 'USDC', USDC(100));
    const resting = await place(acc, { side: 'buy', price: '1', quantity: '1' });
    if (!resting.ok) throw new Error(resting.detail);
    const state = trading.state;
    const getMany = state.getMany.bind(state);
    let calls = 0;
    // The first read (place's check) answers; the batch's read finds shared state down.
    state.getMany = async (keys) => {
      calls += 1;
      if (calls > 1) throw new Error('shared state unavailable');
      return getMany(keys);
    };
    try {
      const [placed, cancelled] = await Promise.allSettled([place(acc, { side: 'buy', price: '1', quantity: '1' }), trading.orders.cancel(callerFor(acc), resting.value.order.id)]);
      expect(placed.status).toBe('rejected');
      expect(cancelled).toMatchObject({ status: 'fulfilled', value: { ok: true, value: { status: 'cancelled' } } });
    } finally {
      state.getMany = getMany;
    }
    expect(await balance(acc, 'USDC')).toMatchObject({ available: USDC(100), held: 0n });
    await verified();
  });

  it('closes a position by selling the available balance at market, rounded down to the lot', async () => {
    const holder = uid('h');
    const bidder = uid('bd');
    await fund(trading, holder, 'MOON', 2_345_678n); // 2.345678 MOON
    await fund(trading, bidder, 'USDC', USDC(100));
    await place(bidder, { side: 'buy', price: '3', quantity: '5' });
    const closed = await trading.orders.closePosition(callerFor(holder), 'MOON');
    expect(closed).toMatchObject({ ok: true, value: { order: { side: 'sell', type: 'market', quantity: MOON(2.34), filled: MOON(2.34), status: 'filled' } } });
    expect(await balance(holder, 'MOON')).toMatchObject({ available: 5_678n });
    expect(await trading.orders.closePosition(callerFor(holder), 'MOON')).toMatchObject({ ok: false, code: 'conflict' });
    expect(await trading.orders.closePosition(callerFor(holder), 'NOPE')).toMatchObject({ ok: false, code: 'not_found' });
    await verified();
  });

  // Commit hooks are functions: they cannot be sent to the order thread, which registers its own.
  itInThisThread('hands every order, fill and cancel, with account and actor, to commit hooks inside the transaction', async () => {
    await sql`create table audit_probe (event text not null, subject text not null, actor text not null)`.execute(store.db);
    const seen: TradingEvent[] = [];
    let armed = true;
    let failOnce = false;
    trading.orders.onCommitting(async (trx, events) => {
      if (!armed) return;
      seen.push(...events);
      for (const e of events) {
        const subject = e.type === 'fill' ? `${e.fill.takerAccountId}>${e.fill.makerAccountId}` : e.type === 'market.delisted' ? e.market : e.order.accountId;
        const actor = e.type === 'fill' ? `${e.fill.takerActor.kind}:${e.fill.takerActor.id}` : `${e.actor.kind}:${e.actor.id}`;
        await sql`insert into audit_probe (event, subject, actor) values (${e.type}, ${subject}, ${actor})`.execute(trx);
      }
      if (failOnce) {
        failOnce = false;
        throw new Error('audit store down');
      }
    });
    try {
      const maker = uid('m');
      const taker = uid('t');
      await fund(trading, maker, 'MOON', MOON(5));
      await fund(trading, taker, 'USDC', USDC(100));
      const ask = await place(maker, { side: 'sell', price: '2', quantity: '2' });
      await place(taker, { side: 'buy', price: '2', quantity: '1' });
      if (!ask.ok) throw new Error(ask.detail);
      await trading.orders.cancel(callerFor(maker), ask.value.order.id);
      expect(seen.map((e) => e.type)).toEqual(['order.placed', 'order.placed', 'fill', 'order.cancelled']);
      expect(seen[0]).toMatchObject({ type: 'order.placed', order: { accountId: maker, status: 'open' }, actor: { kind: 'session', id: `ses_${maker}` } });
      expect(seen[2]).toMatchObject({ type: 'fill', fill: { takerAccountId: taker, makerAccountId: maker, takerActor: { kind: 'session', id: `ses_${taker}` } } });
      expect(seen[3]).toMatchObject({ type: 'order.cancelled', reason: 'user', order: { accountId: maker, status: 'cancelled' }, actor: { id: `ses_${maker}` } });
      const rows = await sql<{ n: number }>`select count(*) as n from audit_probe`.execute(store.db);
      expect(Number(rows.rows[0]!.n)).toBe(4);

      // When the hook fails, its rows and the order's rows roll back together.
      failOnce = true;
      await expect(place(taker, { side: 'buy', price: '1', quantity: '1' })).rejects.toThrow('audit store down');
      expect(Number((await sql<{ n: number }>`select count(*) as n from audit_probe`.execute(store.db)).rows[0]!.n)).toBe(4);
      expect(await trading.queries.orders(taker, { limit: 10, status: 'open' })).toEqual([]);
    } finally {
      armed = false;
      await sql`drop table audit_probe`.execute(store.db);
    }
  });

  itInThisThread('a failed transaction acknowledges nothing and the book is rebuilt from the store', async () => {
    const maker = uid('m');
    const taker = uid('t');
    await fund(trading, maker, 'MOON', MOON(5));
    await fund(trading, taker, 'USDC', USDC(100));
    const ask = await place(maker, { side: 'sell', price: '2', quantity: '1' });
    let failNext = true;
    trading.orders.onCommitting(async () => {
      if (failNext) {
        failNext = false;
        throw new Error('disk on fire');
      }
    });
    await expect(place(taker, { side: 'buy', price: '2', quantity: '1' })).rejects.toThrow('disk on fire');
    // The match happened in memory, then the transaction failed: the store still has the ask.
    expect(await trading.queries.order(maker, ask.ok ? ask.value.order.id : '')).toMatchObject({ status: 'open' });
    expect((await trading.orders.snapshot('MOON-USDC'))?.asks).toEqual([{ price: USDC(2), quantity: MOON(1), orders: 1 }]);
    const retry = await place(taker, { side: 'buy', price: '2', quantity: '1' });
    expect(retry).toMatchObject({ ok: true, value: { order: { status: 'filled' } } });
    await verified();
  });

  it('a second process on the same store sees and trades against the first one’s book (seq check)', async () => {
    const other = await tradingOn(backend === 'sqlite' || thread ? store : await openTestStore('postgres', (store as Store & { schema?: string }).schema), { clock, state: trading.state });
    try {
      const maker = uid('m');
      const taker = uid('t');
      await fund(trading, maker, 'MOON', MOON(5));
      await fund(trading, taker, 'USDC', USDC(100));
      const ask = await place(maker, { side: 'sell', price: '2', quantity: '3' });
      // Process 2 was started before this ask existed; its book must catch up before matching.
      const bid = await other.orders.place(callerFor(taker), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '2', quantity: '1' });
      expect(bid).toMatchObject({ ok: true, value: { order: { status: 'filled' } } });
      // And process 1 sees process 2's fill before its next match.
      const bid2 = await place(taker, { side: 'buy', price: '2', quantity: '2' });
      expect(bid2).toMatchObject({ ok: true, value: { order: { status: 'filled' }, fills: [{ makerOrderId: ask.ok ? ask.value.order.id : '', quantity: MOON(2) }] } });
      expect((await other.orders.snapshot('MOON-USDC'))?.asks).toEqual([]);
      await verified();
    } finally {
      await other.close();
    }
  });

  it('delisting cancels every resting order, releases holds and refuses new orders', async () => {
    await listMoon(trading, 'DELI');
    const acc = uid('d');
    await fund(trading, acc, 'DELI', MOON(5));
    const p = await trading.orders.place(callerFor(acc), { market: 'DELI-USDC', side: 'sell', type: 'limit', price: '2', quantity: '1' });
    expect(p.ok).toBe(true);
    expect(await trading.orders.delist({ kind: 'admin', id: 'admin', accountId: null }, 'DELI-USDC')).toMatchObject({ ok: true, value: { cancelled: 1 } });
    expect(await balance(acc, 'DELI')).toMatchObject({ available: MOON(5), held: 0n });
    expect(await trading.orders.place(callerFor(acc), { market: 'DELI-USDC', side: 'sell', type: 'limit', price: '2', quantity: '1' })).toMatchObject({ ok: false, code: 'validation_failed' });
    expect((await listMoon(trading, 'DELI')).status).toBe('active');
    expect(await trading.orders.place(callerFor(acc), { market: 'DELI-USDC', side: 'sell', type: 'limit', price: '2', quantity: '1' })).toMatchObject({ ok: true });
    await verified();
  });
});
