import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import type { PlaceOrderInput } from '../../src/trading/orders/types.js';
import { serviceAvailable } from '../support/services.js';
import { callerFor, fund, listMoon, MOON, twoProcessesOnPostgres, USDC } from '../support/trading.js';
import { gateAfterRead } from '../support/gate.js';

const pg = await serviceAvailable('postgres');

// Two scale-out processes on one PostgreSQL: one account's orders in two different markets.
describe.skipIf(!pg)('daily limit across two processes trading different markets (postgres)', () => {
  const clock = new ManualClock(Date.UTC(2026, 2, 1, 12));
  const gate = gateAfterRead('trading_limits');
  const procs = twoProcessesOnPostgres(gate.plugin, clock, async (a) => {
    await listMoon(a, 'MOON');
    await listMoon(a, 'DELI');
  });

  it('the two orders together never exceed the limit: the second is refused with daily_limit_exceeded', async () => {
    const { a, b } = procs;
    const acc = 'acc_limit_race';
    const mm = 'acc_limit_mm';
    await fund(a, acc, 'USDC', USDC(100));
    await fund(a, acc, 'DELI', MOON(100));
    await fund(a, mm, 'MOON', MOON(100));
    await a.limits.setOverride(acc, '10', 'admin');
    const order = (o: Partial<PlaceOrderInput>) => ({ type: 'limit', quantity: '6', price: '1', ...o }) as PlaceOrderInput;
    expect(await a.orders.place(callerFor(mm), order({ market: 'MOON-USDC', side: 'sell', quantity: '50' }))).toMatchObject({ ok: true });

    gate.arm();
    // Process A: buy 6 MOON (6 USDC notional, fills at once); its transaction has read the usage…
    const first = a.orders.place(callerFor(acc), order({ market: 'MOON-USDC', side: 'buy' }));
    await gate.reached;
    // …when process B accepts a resting sell of 6 DELI (6 USDC notional) for the same account.
    const second = await b.orders.place(callerFor(acc), order({ market: 'DELI-USDC', side: 'sell' }));
    gate.release();
    const results = [await first, second].map((r) => (r.ok ? `ok:${r.value.order.status}` : r.code));

    const status = await a.limits.status(acc, 'trader');
    expect({ results, used: status.traded + status.open, limit: status.limit }).toEqual({
      results: expect.arrayContaining(['daily_limit_exceeded']),
      used: USDC(6),
      limit: USDC(10),
    });
  });
});
