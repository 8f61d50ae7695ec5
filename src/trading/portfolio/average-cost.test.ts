import { describe, expect, it } from 'vitest';
import { ok } from '../../errors/registry.js';
import { openTestStore } from '../../../test/support/stores.js';
import { callerFor, fund, listMoon, MOON, tradingOn, USDC } from '../../../test/support/trading.js';
import { applyBuy, applyOutflow, applySell, type CostState } from './average-cost.js';
import { SYSTEM_OWNERS } from '../ledger/index.js';
import { recordOutflow } from './index.js';

describe('average cost', () => {
  it('adds buys, realizes sells at the average, keeps the average through outflows', () => {
    const s: CostState = { cost: 0n, realized: 0n };
    applyBuy(s, 100n); // 10 units
    applyBuy(s, 300n); // 10 more: 20 units cost 400, average 20
    applySell(s, 5n, 150n, 20n); // sell 5 at 30: cost out 100, realized 50
    expect(s).toEqual({ cost: 300n, realized: 50n });
    applyOutflow(s, 5n, 15n); // withdraw 5 of 15: cost out 100, nothing realized
    expect(s).toEqual({ cost: 200n, realized: 50n });
    applySell(s, 10n, 100n, 10n); // sell the rest below cost
    expect(s).toEqual({ cost: 0n, realized: -50n });
  });

  it('recordOutflow lowers the stored cost basis inside a transaction', async () => {
    const store = await openTestStore('sqlite');
    const trading = await tradingOn(store);
    try {
      await listMoon(trading);
      await fund(trading, 'acc_s', 'MOON', MOON(10));
      await fund(trading, 'acc_b', 'USDC', USDC(100));
      await trading.orders.place(callerFor('acc_s'), { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '2', quantity: '4' });
      await trading.orders.place(callerFor('acc_b'), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '2', quantity: '4' });
      const before = (await trading.portfolios.positions('acc_b'))[0]!;
      expect(before).toMatchObject({ quantity: MOON(4), costBasis: USDC(8.016) });
      // A withdrawal of 1 MOON leaves the ledger and takes its share of the cost with it.
      await trading.ledger.run(async (l, trx) => {
        const held = await l.balance('acc_b', 'MOON');
        await l.post('withdrawal.sent', 'wdr_1', [{ owner: 'acc_b', asset: 'MOON', amount: -MOON(1) }, { owner: SYSTEM_OWNERS.external, asset: 'MOON', amount: MOON(1) }]);
        await recordOutflow(trx, 'acc_b', 'MOON', MOON(1), held.available + held.held);
        return ok(undefined);
      });
      expect((await trading.portfolios.positions('acc_b'))[0]).toMatchObject({ costBasis: USDC(6.012), averageCost: USDC(2.004) });
    } finally {
      await trading.close();
      await store.close();
    }
  });
});
