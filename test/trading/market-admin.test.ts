import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { serviceAvailable } from '../support/services.js';
import { openTestStore } from '../support/stores.js';
import { listMoon, tradingOn } from '../support/trading.js';

const pg = await serviceAvailable('postgres');

const admin = { kind: 'admin', id: 'ses_admin', accountId: 'acc_admin' } as const;

describe.skipIf(!pg)('relisting a delisted market under a race (postgres)', () => {
  it('two admins relisting at once: one wins, the other gets conflict (not a 201 with terms it did not set)', async () => {
    const store = await openTestStore('postgres');
    const T = await tradingOn(store, { clock: new ManualClock(Date.UTC(2026, 2, 1, 12)) });
    try {
      await listMoon(T);
      expect((await T.orders.delist(admin, 'MOON-USDC')).ok).toBe(true);
      const seqBefore = Number((await store.db.selectFrom('markets').select('seq').where('symbol', '=', 'MOON-USDC').executeTakeFirstOrThrow()).seq);
      let releaseFirst!: () => void;
      const held = new Promise<void>((r) => (releaseFirst = r));
      let firstListed!: () => void;
      const listedFirst = new Promise<void>((r) => (firstListed = r));
      // The first relisting writes its row, then waits before committing.
      const first = store.transaction(async (trx) => {
        const r = await T.assets.listMarket({ base: 'MOON', quote: 'USDC', tickSize: '0.01', lotSize: '1', minNotional: '5' }, trx);
        firstListed();
        await held;
        return r;
      });
      await listedFirst;
      // The second read the market as delisted too (before the first committed) and now waits on its row lock.
      const second = store.transaction((trx) => T.assets.listMarket({ base: 'MOON', quote: 'USDC', tickSize: '0.001', lotSize: '0.1', minNotional: '2' }, trx));
      await new Promise((r) => setTimeout(r, 300));
      releaseFirst();
      const [a, b] = await Promise.all([first, second]);
      expect(a.ok).toBe(true);
      expect(b.ok ? 'ok' : b.code).toBe('conflict');
      const row = await store.db.selectFrom('markets').selectAll().where('symbol', '=', 'MOON-USDC').executeTakeFirstOrThrow();
      expect({ status: row.status, tick: String(row.tick_size), seq: Number(row.seq) }).toEqual({ status: 'active', tick: '10000', seq: seqBefore + 1 });
    } finally {
      await T.close();
      await store.close();
    }
  });
});
