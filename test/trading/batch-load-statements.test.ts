import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Batch } from '../../src/trading/orders/batch.js';
import type { Store } from '../../src/store/db.js';
import { openTestStore, storeBackends } from '../support/stores.js';

/**
 * The order batch is on the benchmarked hot path: loading an account's limits (the daily-notional
 * override and the open-orders cap override) is one statement, as it was before the open-orders
 * override existed. On PostgreSQL every statement of a transaction is a round trip of its own
 * (Promise.all does not pipeline them on one connection), paid by every batch, i.e. every order
 * at low load.
 */
class Counter implements KyselyPlugin {
  /** The tables of interest each executed statement names (a subquery is part of its statement). */
  readonly tables: string[][] = [];
  readonly #pending = new WeakMap<object, string[]>();
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const json = JSON.stringify(args.node);
    const named = ['trading_limits', 'open_orders_limits'].filter((t) => json.includes(`"${t}"`));
    // A subquery is transformed too, under its own id that never runs: the last transform of an id wins.
    this.#pending.set(args.queryId, named);
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    this.tables.push(this.#pending.get(args.queryId) ?? []);
    return args.result;
  }
}

describe.each(await storeBackends())('Batch.loadAccounts on %s', (backend) => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore(backend);
    const now = Date.now();
    for (const id of ['acc_both', 'acc_daily', 'acc_open', 'acc_none']) {
      await store.db.insertInto('accounts').values({ id, wallet: `0x${id.padEnd(40, '0')}`, chain: 'ethereum', role: 'trader', created_at: now, updated_at: now }).execute();
    }
    for (const id of ['acc_both', 'acc_daily']) await store.db.insertInto('trading_limits').values({ account_id: id, daily_notional: '5000000', updated_by: 'acc_admin', updated_at: now }).execute();
    for (const id of ['acc_both', 'acc_open']) await store.db.insertInto('open_orders_limits').values({ account_id: id, max_open_orders: 7, updated_by: 'acc_admin', updated_at: now }).execute();
  });
  afterAll(async () => {
    await store.close();
  });

  it('reads both limit overrides of the accounts in one statement', async () => {
    const counter = new Counter();
    const batch = await store.transaction(async (trx) => {
      const b = new Batch(trx.withPlugin(counter), Date.now(), store.dialect);
      await b.loadAccounts(['acc_both', 'acc_daily', 'acc_open', 'acc_none']);
      return b;
    });
    expect(counter.tables.filter((t) => t.includes('trading_limits') || t.includes('open_orders_limits'))).toHaveLength(1);
    expect(batch.limitOverride('acc_both')).toBe(5_000_000n);
    expect(batch.openOrdersOverride('acc_both')).toBe(7);
    expect(batch.limitOverride('acc_daily')).toBe(5_000_000n);
    expect(batch.openOrdersOverride('acc_daily')).toBeNull();
    expect(batch.limitOverride('acc_open')).toBeNull();
    expect(batch.openOrdersOverride('acc_open')).toBe(7);
    expect(batch.limitOverride('acc_none')).toBeNull();
    expect(batch.openOrdersOverride('acc_none')).toBeNull();
  });
});
