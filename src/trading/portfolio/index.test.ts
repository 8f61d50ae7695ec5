import { describe, expect, it } from 'vitest';
import { openTestStore, storeBackends } from '../../../test/support/stores.js';
import { callerFor, fund, listMoon, MOON, tradingOn, USDC } from '../../../test/support/trading.js';

describe.each(await storeBackends())('portfolio on %s', (backend) => {
  it('values one reading of balances and costs: a trade committing meanwhile counts wholly or not at all', async () => {
    const store = await openTestStore(backend);
    const trading = await tradingOn(store);
    try {
      await listMoon(trading);
      await fund(trading, 'acc_s', 'MOON', MOON(10));
      await fund(trading, 'acc_b', 'USDC', USDC(100));
      await trading.orders.place(callerFor('acc_s'), { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '2', quantity: '0.5' });
      await trading.orders.place(callerFor('acc_s'), { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '3', quantity: '4' });
      await trading.orders.place(callerFor('acc_b'), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '2', quantity: '0.5' });

      // acc_b buys 4 MOON at 3 (12 USDC + 0.024 taker fee) while its holdings are being read:
      // just before the balances are read a second time, if they are.
      const read = trading.ledger.balances.bind(trading.ledger);
      let reads = 0;
      trading.ledger.balances = async (owner: string) => {
        if (owner === 'acc_b' && ++reads === 2) {
          const bought = await trading.orders.place(callerFor('acc_b'), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '3', quantity: '4' });
          expect(bought.ok && bought.value.order.status).toBe('filled');
        }
        return read(owner);
      };

      const p = await trading.portfolios.portfolio('acc_b');
      const moon = p.positions.find((x) => x.asset === 'MOON')!;
      // Before the trade: 0.5 MOON that cost 1.002; after it: 4.5 MOON that cost 13.026.
      const consistent = [
        { cash: USDC(100) - USDC(1.002), quantity: MOON(0.5), costBasis: USDC(1.002) },
        { cash: USDC(100) - USDC(13.026), quantity: MOON(4.5), costBasis: USDC(13.026) },
      ];
      expect(consistent).toContainEqual({ cash: p.cash, quantity: moon.quantity, costBasis: moon.costBasis });
      expect(p.totalValue).toBe(p.cash + p.positionsValue);
      expect(p.positionsValue).toBe((moon.lastPrice! * moon.quantity) / 1_000_000n);
    } finally {
      await trading.close();
      await store.close();
    }
  });
});
