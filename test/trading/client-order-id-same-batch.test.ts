import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import type { Store } from '../../src/store/db.js';
import { readMinor } from '../../src/trading/money.js';
import type { PlaceOrderInput, TradingEvent } from '../../src/trading/orders/types.js';
import { openTestStore, storeBackends } from '../support/stores.js';
import { callerFor, fund, listMoon, MOON, tradingOn, USDC } from '../support/trading.js';

let n = 0;
const uid = (p: string) => `acc_${p}_${++n}_${Math.random().toString(36).slice(2, 8)}`;

/**
 * A retried placement (same clientOrderId) looks its original up at the start of the group commit
 * it lands in. When the same commit also fills or cancels that original, the order row must say
 * so: the batch must write the resting order's record, not the copy the lookup read.
 */
describe.each(await storeBackends())('a clientOrderId retry in the same group commit as a fill or cancel of its original (%s)', (backend) => {
  let store: Store & { schema?: string };
  let trading: Awaited<ReturnType<typeof tradingOn>>;
  const clock = new ManualClock(Date.UTC(2026, 2, 1, 12, 0, 0));
  const batches: TradingEvent[][] = [];
  beforeAll(async () => {
    store = await openTestStore(backend);
    trading = await tradingOn(store, { clock });
    await listMoon(trading);
    trading.orders.onCommitting(async (_trx, events) => {
      batches.push([...events]);
    });
  });
  afterAll(async () => {
    await trading.close();
    await store.close();
  });
  const place = (accountId: string, o: Partial<PlaceOrderInput>) => trading.orders.place(callerFor(accountId), { market: 'MOON-USDC', side: 'buy', type: 'limit', quantity: '1', ...o } as PlaceOrderInput);
  const row = async (id: string) => {
    const r = await store.db.selectFrom('orders').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    return { status: r.status, filled: readMinor(r.filled), remaining: readMinor(r.remaining) };
  };
  /** A funded maker with an ask resting under `clientOrderId`, and a funded taker. */
  const restingAsk = async (clientOrderId: string, ask: { price: string; quantity: string }) => {
    const maker = uid('m');
    const taker = uid('t');
    await fund(trading, maker, 'MOON', MOON(10));
    await fund(trading, taker, 'USDC', USDC(100));
    const input = { side: 'sell' as const, ...ask, clientOrderId };
    const placed = await place(maker, input);
    if (!placed.ok) throw new Error(placed.detail);
    batches.length = 0;
    return { maker, taker, id: placed.value.order.id, retry: () => place(maker, input) };
  };

  it('the retry first, then a taker filling the original: the row says filled, the retry shows it as it was', async () => {
    const ask = await restingAsk('ask-1', { price: '2', quantity: '2' });
    const [retry, bid] = await Promise.all([ask.retry(), place(ask.taker, { side: 'buy', price: '2', quantity: '2' })]);
    expect(batches).toHaveLength(1); // one transaction
    expect(retry).toMatchObject({ ok: true, value: { replayed: true, order: { id: ask.id, status: 'open' } } });
    expect(bid).toMatchObject({ ok: true, value: { order: { status: 'filled' }, fills: [{ makerOrderId: ask.id }] } });
    expect(await row(ask.id)).toEqual({ status: 'filled', filled: MOON(2), remaining: 0n });
    expect((await store.db.selectFrom('holds').select('status').where('id', '=', ask.id).executeTakeFirstOrThrow()).status).toBe('closed');
  });

  it('a taker filling the original first, then the retry: the retry shows it filled', async () => {
    const ask = await restingAsk('ask-2', { price: '2', quantity: '1' });
    const [, retry] = await Promise.all([place(ask.taker, { side: 'buy', price: '2', quantity: '1' }), ask.retry()]);
    expect(batches).toHaveLength(1);
    expect(retry).toMatchObject({ ok: true, value: { replayed: true, order: { id: ask.id, status: 'filled' } } });
    expect(await row(ask.id)).toEqual({ status: 'filled', filled: MOON(1), remaining: 0n });
  });

  it('the retry and a cancel-all: the row says cancelled', async () => {
    const ask = await restingAsk('ask-3', { price: '3', quantity: '1' });
    const [retry, cancelled] = await Promise.all([ask.retry(), trading.orders.cancelAll(callerFor(ask.maker), 'MOON-USDC')]);
    expect(batches).toHaveLength(1);
    expect(retry.ok).toBe(true);
    expect(cancelled).toMatchObject({ ok: true, value: [{ id: ask.id, status: 'cancelled' }] });
    expect((await row(ask.id)).status).toBe('cancelled');
  });
});

describe.each(await storeBackends())('after a retry batched with a cancel, another process rebuilds the same book (%s)', (backend) => {
  it('no ghost of the cancelled order: the second process sees no bid, and no crossed book', async () => {
    const store = await openTestStore(backend);
    const clock = new ManualClock(Date.UTC(2026, 2, 1, 12));
    const A = await tradingOn(store, { clock });
    const store2: Store = backend === 'sqlite' ? store : await openTestStore('postgres', store.schema);
    const B = await tradingOn(store2, { clock, state: A.state });
    try {
      await listMoon(A);
      await fund(A, 'acc_m', 'USDC', USDC(10));
      await fund(A, 'acc_s', 'MOON', MOON(10));
      const bid = await A.orders.place(callerFor('acc_m'), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '3', quantity: '1', clientOrderId: 'g' });
      if (!bid.ok) throw new Error(bid.detail);
      const [retry, cancelled] = await Promise.all([
        A.orders.place(callerFor('acc_m'), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '3', quantity: '1', clientOrderId: 'g' }),
        A.orders.cancelAll(callerFor('acc_m'), 'MOON-USDC'),
      ]);
      expect(retry.ok && cancelled.ok && cancelled.value.length).toBe(1);
      const ask = await A.orders.place(callerFor('acc_s'), { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '2.5', quantity: '1' });
      expect(ask).toMatchObject({ ok: true, value: { order: { status: 'open' } } });
      const bidRow = await store.db.selectFrom('orders').select(['status']).where('id', '=', bid.value.order.id).executeTakeFirstOrThrow();
      const usdc = (await A.ledger.balances('acc_m')).find((b) => b.asset === 'USDC');
      const snapB = await B.orders.snapshot('MOON-USDC');
      expect({ bidStatus: bidRow.status, usdcHeld: usdc?.held, bBestBid: snapB?.bids[0]?.price, bBestAsk: snapB?.asks[0]?.price }).toEqual({
        bidStatus: 'cancelled',
        usdcHeld: 0n,
        bBestBid: undefined,
        bBestAsk: USDC(2.5),
      });
    } finally {
      await B.close();
      await A.close();
      if (store2 !== store) await store2.close();
      await store.close();
    }
  });
});

describe.each(await storeBackends())('a clientOrderId retry after its market was delisted (%s)', (backend) => {
  it('returns the original order', async () => {
    const store = await openTestStore(backend);
    const T = await tradingOn(store, { clock: new ManualClock(Date.UTC(2026, 2, 1, 12)) });
    try {
      await listMoon(T);
      await fund(T, 'acc_r', 'MOON', MOON(5));
      const input = { market: 'MOON-USDC', side: 'sell' as const, type: 'limit' as const, price: '2', quantity: '1', clientOrderId: 'r-1' };
      const first = await T.orders.place(callerFor('acc_r'), input);
      if (!first.ok) throw new Error(first.detail);
      await T.orders.delist({ kind: 'admin', id: 'adm', accountId: null }, 'MOON-USDC');
      expect(await T.orders.place(callerFor('acc_r'), input)).toMatchObject({ ok: true, value: { replayed: true, order: { id: first.value.order.id, status: 'cancelled' } } });
      // A new clientOrderId on the delisted market is still refused.
      expect(await T.orders.place(callerFor('acc_r'), { ...input, clientOrderId: 'r-2' })).toMatchObject({ ok: false, code: 'validation_failed' });
    } finally {
      await T.close();
      await store.close();
    }
  });
});

describe.each(await storeBackends())('a clientOrderId retry after its market was relisted with other terms (%s)', (backend) => {
  it('returns the original order, although the retry no longer fits the tick size', async () => {
    const store = await openTestStore(backend);
    const T = await tradingOn(store, { clock: new ManualClock(Date.UTC(2026, 2, 1, 12)) });
    try {
      await listMoon(T);
      await fund(T, 'acc_rl', 'MOON', MOON(5));
      const input = { market: 'MOON-USDC', side: 'sell' as const, type: 'limit' as const, price: '2.0001', quantity: '1', clientOrderId: 'rl-1' };
      const first = await T.orders.place(callerFor('acc_rl'), input);
      if (!first.ok) throw new Error(first.detail);
      await T.orders.delist({ kind: 'admin', id: 'adm', accountId: null }, 'MOON-USDC');
      const relisted = await T.assets.listMarket({ base: 'MOON', quote: 'USDC', tickSize: '0.01', lotSize: '0.01', minNotional: '1' });
      expect(relisted).toMatchObject({ ok: true, value: { status: 'active' } });
      expect(await T.orders.place(callerFor('acc_rl'), input)).toMatchObject({ ok: true, value: { replayed: true, order: { id: first.value.order.id, status: 'cancelled' } } });
      // A new clientOrderId at that price is refused under the new terms.
      expect(await T.orders.place(callerFor('acc_rl'), { ...input, clientOrderId: 'rl-2' })).toMatchObject({ ok: false, code: 'validation_failed' });
    } finally {
      await T.close();
      await store.close();
    }
  });
});

describe.each(await storeBackends())('a close-position retry after its market was delisted (%s)', (backend) => {
  it('returns the original close order', async () => {
    const store = await openTestStore(backend);
    const T = await tradingOn(store, { clock: new ManualClock(Date.UTC(2026, 2, 1, 12)) });
    try {
      await listMoon(T);
      await fund(T, 'acc_c', 'MOON', MOON(5));
      await fund(T, 'acc_bid', 'USDC', USDC(100));
      expect(await T.orders.place(callerFor('acc_bid'), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '2', quantity: '5' })).toMatchObject({ ok: true });
      const first = await T.orders.closePosition(callerFor('acc_c'), 'MOON', { clientOrderId: 'close-1' });
      if (!first.ok) throw new Error(first.detail);
      expect(first.value.order).toMatchObject({ side: 'sell', status: 'filled' });
      await T.orders.delist({ kind: 'admin', id: 'adm', accountId: null }, 'MOON-USDC');
      // The client did not see the answer and retries: it gets what was done, not a 404.
      expect(await T.orders.closePosition(callerFor('acc_c'), 'MOON', { clientOrderId: 'close-1' })).toMatchObject({
        ok: true,
        value: { replayed: true, order: { id: first.value.order.id, status: 'filled' }, fills: [{ quantity: MOON(5) }] },
      });
      // A new close on the delisted market is still refused.
      expect(await T.orders.closePosition(callerFor('acc_c'), 'MOON', { clientOrderId: 'close-2' })).toMatchObject({ ok: false, code: 'not_found' });
    } finally {
      await T.close();
      await store.close();
    }
  });
});
