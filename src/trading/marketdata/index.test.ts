import { describe, expect, it } from 'vitest';
import { openTestStore, storeBackends } from '../../../test/support/stores.js';
import { callerFor, fund, listMoon, MOON, tradingOn, USDC } from '../../../test/support/trading.js';

describe.each(await storeBackends())('tickers on %s', (backend) => {
  it('read the last price and the 24 h candles at one moment: a trade committing meanwhile counts wholly or not at all', async () => {
    const store = await openTestStore(backend);
    const trading = await tradingOn(store);
    try {
      await listMoon(trading);
      await fund(trading, 'acc_s', 'MOON', MOON(10));
      await fund(trading, 'acc_b', 'USDC', USDC(100));
      await trading.orders.place(callerFor('acc_s'), { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '2', quantity: '1' });

      // The market's first trade commits while the tickers are being read: as soon as the first
      // market row read has been turned into a market, before anything else is read.
      const fromRow = trading.assets.fromRow.bind(trading.assets);
      let traded = false;
      trading.assets.fromRow = async (row, db) => {
        const market = await fromRow(row, db);
        if (!traded) {
          traded = true;
          const bought = await trading.orders.place(callerFor('acc_b'), { market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' });
          expect(bought.ok && bought.value.order.status).toBe('filled');
        }
        return market;
      };

      const [t] = await trading.marketData.tickers();
      expect(traded).toBe(true);
      const before = { last: null, open24h: null, high24h: null, low24h: null, volume24h: 0n, trades24h: 0 };
      const after = { last: USDC(2), open24h: USDC(2), high24h: USDC(2), low24h: USDC(2), volume24h: MOON(1), trades24h: 1 };
      expect([before, after]).toContainEqual({ last: t!.last, open24h: t!.open24h, high24h: t!.high24h, low24h: t!.low24h, volume24h: t!.volume24h, trades24h: t!.trades24h });
    } finally {
      await trading.close();
      await store.close();
    }
  });
});
