import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { openTestStore, storeBackends } from '../support/stores.js';
import { callerFor, fund, listMoon, tradingOn, USDC } from '../support/trading.js';

/**
 * The market cache serves order parsing (status, terms). A market row read inside a transaction
 * may carry that transaction's own, uncommitted changes (the audit hook reads it after the batch
 * wrote it): if the transaction then fails, the cache must not keep them.
 */
describe.each(await storeBackends())('the market cache and a transaction that fails (%s)', (backend) => {
  it('a delisting that rolls back leaves the market trading', async () => {
    const store = await openTestStore(backend);
    const T = await tradingOn(store, { clock: new ManualClock(Date.UTC(2026, 2, 1, 12)) });
    try {
      await listMoon(T);
      await fund(T, 'acc_cache', 'USDC', USDC(100));
      let failNext = false;
      // Like the audit hook: reads the market row through the transaction, after the batch wrote it.
      T.orders.onCommitting(async (trx) => {
        const row = await trx.selectFrom('markets').selectAll().where('symbol', '=', 'MOON-USDC').executeTakeFirstOrThrow();
        await T.assets.fromRow(row, trx);
        if (failNext) {
          failNext = false;
          throw new Error('injected failure before commit');
        }
      });
      failNext = true;
      await expect(T.orders.delist({ kind: 'admin', id: 'adm', accountId: null }, 'MOON-USDC')).rejects.toThrow(/injected/);
      expect((await store.db.selectFrom('markets').select('status').where('symbol', '=', 'MOON-USDC').executeTakeFirstOrThrow()).status).toBe('active');
      expect((await T.assets.market('MOON-USDC'))?.status).toBe('active');
      expect(await T.orders.place(callerFor('acc_cache'), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '1' })).toMatchObject({ ok: true });
    } finally {
      await T.close();
      await store.close();
    }
  });
});
