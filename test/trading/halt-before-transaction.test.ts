import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { haltsOf, setHalt } from '../../src/trading/halt.js';
import { OrderSequencer } from '../../src/trading/orders/sequencer.js';
import type { Store } from '../../src/store/db.js';
import { openTestStore } from '../support/stores.js';
import { callerFor, fund, listMoon, tradingOn, USDC } from '../support/trading.js';

/**
 * On the order thread (SQLite), the sequencer waits before each transaction for the server
 * thread's statements that wait for the write lock (`beforeTransaction`, up to 100 ms). The server
 * thread goes on answering requests meanwhile: a halt an admin sets then must stop the orders of
 * the batch that has not begun yet.
 */
let store: Store;
let trading: Awaited<ReturnType<typeof tradingOn>>;
const clock = new ManualClock(Date.UTC(2026, 2, 1, 12, 0, 0));

beforeAll(async () => {
  store = await openTestStore('sqlite');
  trading = await tradingOn(store, { clock });
  await listMoon(trading);
});
afterAll(async () => {
  await trading.close();
  await store.close();
});

it('refuses an order whose batch waited for the server thread while a halt was set', async () => {
  const acc = 'acc_halt_yield';
  await fund(trading, acc, 'USDC', USDC(100));
  const state = trading.state;
  let waited = 0;
  const sequencer = new OrderSequencer({
    store,
    clock,
    log: pino({ level: 'silent' }),
    assets: trading.assets,
    roleLimits: { trader: USDC(1_000_000) },
    maxOpenOrders: 200,
    batchMax: 16,
    halts: (markets) => haltsOf(state, markets),
    // The server thread, let in first, answers an admin's halt.
    beforeTransaction: async () => {
      if (waited++ === 0) await setHalt(state, { market: 'MOON-USDC', reason: 'incident', by: 'admin', at: clock.now() });
    },
  });
  try {
    const r = await sequencer.submit({
      kind: 'place',
      caller: callerFor(acc),
      markets: ['MOON-USDC'],
      order: { market: 'MOON-USDC', side: 'buy', type: 'limit', price: 1_000_000n, quantity: 1_000_000n, timeInForce: 'GTC', selfTradePrevention: 'cancel_maker', clientOrderId: null },
    });
    expect(r).toMatchObject({ ok: false, code: 'trading_halted' });
    expect(await store.db.selectFrom('orders').select('id').where('account_id', '=', acc).execute()).toEqual([]);
  } finally {
    await sequencer.close();
  }
});
