import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import type { Store } from '../../src/store/db.js';
import { MAX_MINOR } from '../../src/trading/money.js';
import { openTestStore } from '../support/stores.js';
import { callerFor, fund, listMoon, MOON, tradingOn, USDC } from '../support/trading.js';

/** Edges of the order path that the broader suites do not reach. */
describe('order path edges', () => {
  let store: Store;
  let trading: Awaited<ReturnType<typeof tradingOn>>;
  let n = 0;
  const uid = (p: string) => `acc_${p}_${++n}`;
  const balance = async (owner: string, asset: string) => (await trading.ledger.balances(owner)).find((b) => b.asset === asset) ?? { asset, available: 0n, held: 0n };

  beforeAll(async () => {
    store = await openTestStore('sqlite');
    trading = await tradingOn(store, { clock: new ManualClock(Date.UTC(2026, 2, 1, 12)) });
    await listMoon(trading);
  });
  afterAll(async () => {
    await trading.close();
    await store.close();
  });

  it('closing a position larger than 2^63 − 1 minor units sells at most that (rounded to the lot), never an order beyond it', async () => {
    const holder = uid('holder');
    const buyer = uid('buyer');
    const huge = 1n << 70n;
    await fund(trading, holder, 'MOON', huge);
    await fund(trading, buyer, 'USDC', USDC(100));
    const bid = await trading.orders.place(callerFor(buyer), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '10' });
    expect(bid.ok).toBe(true);

    const r = await trading.orders.closePosition(callerFor(holder), 'MOON');
    if (!r.ok) throw new Error(r.detail);
    const lot = MOON(0.01);
    expect(r.value.order.quantity).toBe(MAX_MINOR - (MAX_MINOR % lot));
    expect(r.value.order).toMatchObject({ status: 'expired', filled: MOON(10) });
    expect(await balance(holder, 'MOON')).toMatchObject({ available: huge - MOON(10), held: 0n });
    expect((await trading.ledger.verify()).ok).toBe(true);
  });
  it('a market order that would trade below the minimum notional is refused and changes nothing; one at the minimum trades', async () => {
    const maker = uid('maker');
    const taker = uid('taker');
    await fund(trading, maker, 'MOON', MOON(100));
    await fund(trading, taker, 'USDC', USDC(100));
    await fund(trading, taker, 'MOON', MOON(1));
    // The taker's own ask, the best: a buy would cancel it (self-trade prevention, cancel_maker),
    // which a refused order must not do.
    const own = await trading.orders.place(callerFor(taker), { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '1.5', quantity: '1' });
    if (!own.ok) throw new Error(own.detail);
    // The maker's ask of 0.5 MOON at 2 USDC: the market's minimum order is 1 USDC.
    const ask = await trading.orders.place(callerFor(maker), { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '2', quantity: '0.5' });
    if (!ask.ok) throw new Error(ask.detail);
    const makerBefore = await balance(maker, 'MOON');
    const takerBefore = [await balance(taker, 'USDC'), await balance(taker, 'MOON')];

    const tooSmall = await trading.orders.place(callerFor(taker), { market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '0.25' });
    expect(tooSmall).toMatchObject({ ok: false, code: 'validation_failed' });
    if (!tooSmall.ok) expect(tooSmall.detail).toBe('This market order would trade 0.5 USDC, below the minimum order of 1 USDC');
    expect(await balance(maker, 'MOON')).toEqual(makerBefore);
    expect([await balance(taker, 'USDC'), await balance(taker, 'MOON')]).toEqual(takerBefore);
    // Both asks still rest whole.
    const book = await trading.orders.snapshot('MOON-USDC');
    expect(book?.asks.map((l) => [l.price, l.quantity])).toEqual([
      [USDC(1.5), MOON(1)],
      [USDC(2), MOON(0.5)],
    ]);

    // Exactly the minimum trades (and cancels the taker's own ask on the way).
    const enough = await trading.orders.place(callerFor(taker), { market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '0.5' });
    if (!enough.ok) throw new Error(enough.detail);
    expect(enough.value.order).toMatchObject({ status: 'filled', filled: MOON(0.5) });
    expect((await trading.orders.snapshot('MOON-USDC'))?.asks).toEqual([]);
    // A market order into an empty side trades nothing, moves no money, and is recorded as expired.
    const none = await trading.orders.place(callerFor(taker), { market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '0.01' });
    if (!none.ok) throw new Error(none.detail);
    expect(none.value.order).toMatchObject({ status: 'expired', filled: 0n });
    expect((await trading.ledger.verify()).ok).toBe(true);
  });
});
