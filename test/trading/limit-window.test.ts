import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import type { Store } from '../../src/store/db.js';
import type { PlaceOrderInput } from '../../src/trading/orders/types.js';
import { openTestStore, storeBackends } from '../support/stores.js';
import { callerFor, fund, listMoon, MOON, tradingOn, USDC } from '../support/trading.js';

describe.each(await storeBackends())('daily limit: a trade less than 24 h old still counts (%s)', (backend) => {
  let store: Store;
  let trading: Awaited<ReturnType<typeof tradingOn>>;
  const clock = new ManualClock(Date.UTC(2026, 2, 2, 12, 0, 59)); // 59 s into a minute
  beforeAll(async () => {
    store = await openTestStore(backend);
    trading = await tradingOn(store, { clock });
    await listMoon(trading);
  });
  afterAll(async () => {
    await trading.close();
    await store.close();
  });
  const place = (acc: string, o: Partial<PlaceOrderInput>) => trading.orders.place(callerFor(acc), { market: 'MOON-USDC', type: 'limit', price: '1', ...o } as PlaceOrderInput);

  it('trading the whole limit at 12:00:59 and again at 12:00:00 the next day (23 h 59 min 1 s later) is refused', async () => {
    const acc = 'acc_window';
    const mm = 'acc_window_mm';
    await fund(trading, acc, 'USDC', USDC(1000));
    await fund(trading, mm, 'MOON', MOON(100));
    await trading.limits.setOverride(acc, '10', 'admin');
    await place(mm, { side: 'sell', quantity: '50' });
    expect(await place(acc, { side: 'buy', quantity: '10' })).toMatchObject({ ok: true, value: { order: { status: 'filled' } } });

    clock.set(Date.UTC(2026, 2, 3, 12, 0, 0)); // 86,341 s later: still inside the rolling 24 h
    expect((await trading.limits.status(acc, 'trader')).traded).toBe(USDC(10));
    expect(await place(acc, { side: 'buy', quantity: '10' })).toMatchObject({ ok: false, code: 'daily_limit_exceeded' });
  });
});
