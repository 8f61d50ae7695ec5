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
});
