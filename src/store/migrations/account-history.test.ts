import { CompiledQuery } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { dropSchema, newIsolation } from '../../../test/support/server.js';
import { PG_URL, serviceAvailable } from '../../../test/support/services.js';
import { OrderQueries } from '../../trading/orders/queries.js';
import { openStore, type Store } from '../db.js';
import { migrateTo, migrateToLatest } from '../migrate.js';

const kinds = (await serviceAvailable('postgres')) ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const);

/** Migration 0090 fills account_history from the orders and fills already stored. */
describe.each(kinds)('account history backfill on %s', (kind) => {
  let store: Store;
  let pgSchema: string | undefined;
  afterEach(async () => {
    await store.close();
    if (pgSchema) await dropSchema(pgSchema);
  });

  it('indexes existing orders and both sides of existing fills (a self-trade once), and drops the old indexes', async () => {
    pgSchema = kind === 'postgres' ? newIsolation().pgSchema : undefined;
    store = await openStore(kind === 'postgres' ? { databaseUrl: PG_URL, pgSchema: pgSchema!, dataDir: '/tmp' } : { dataDir: '/tmp', sqliteFile: ':memory:' });
    await migrateTo(store, '0080_index_write_cost');
    const order = (id: string, account: string) => ({
      id, account_id: account, market: 'MOON-USDC', side: 'buy' as const, type: 'limit' as const, time_in_force: 'GTC' as const, stp: 'cancel_maker', price: '1', quantity: '1',
      filled: '1', remaining: '0', notional: '1', fees: '0', status: 'filled' as const, reason: null, client_order_id: null, seq: 1, actor_kind: 'session', actor_id: 's', cancel_actor_kind: null, cancel_actor_id: null, created_at: 1, updated_at: 1,
    });
    await store.db.insertInto('orders').values([order('ord_0001AAAA', 'acc_m'), order('ord_0002BBBB', 'acc_t'), order('ord_0003CCCC', 'acc_t'), order('ord_0004DDDD', 'acc_t')]).execute();
    const fill = (id: string, taker: string, maker: string, takerOrder: string, makerOrder: string, seq: number) => ({
      id, market: 'MOON-USDC', trade_seq: seq, price: '1', quantity: '1', notional: '1', taker_side: 'buy' as const, taker_order_id: takerOrder, maker_order_id: makerOrder,
      taker_account_id: taker, maker_account_id: maker, taker_fee: '0', maker_fee: '0', taker_actor_kind: 'session', taker_actor_id: 's', created_at: 2,
    });
    await store.db.insertInto('fills').values([fill('fil_0002BBBB.000', 'acc_t', 'acc_m', 'ord_0002BBBB', 'ord_0001AAAA', 1), fill('fil_0004DDDD.000', 'acc_t', 'acc_t', 'ord_0004DDDD', 'ord_0003CCCC', 2)]).execute();

    expect(await migrateToLatest(store)).toContain('0090_account_history');

    const history = await store.db.selectFrom('account_history').selectAll().orderBy('account_id').orderBy('sort_key').orderBy('kind').execute();
    expect(history.map((h) => `${h.account_id} ${h.sort_key} ${h.kind} ${h.id}`)).toEqual([
      'acc_m 0001AAAA order ord_0001AAAA',
      'acc_m 0002BBBB.000 maker fil_0002BBBB.000',
      'acc_t 0002BBBB order ord_0002BBBB',
      'acc_t 0002BBBB.000 taker fil_0002BBBB.000',
      'acc_t 0003CCCC order ord_0003CCCC',
      'acc_t 0004DDDD order ord_0004DDDD',
      'acc_t 0004DDDD.000 taker fil_0004DDDD.000',
    ]);
    const queries = new OrderQueries(store);
    expect((await queries.orders('acc_t', { limit: 10 })).map((o) => o.id)).toEqual(['ord_0004DDDD', 'ord_0003CCCC', 'ord_0002BBBB']);
    expect((await queries.accountFills('acc_m', { limit: 10 })).map((f) => [f.fill.id, f.liquidity])).toEqual([['fil_0002BBBB.000', 'maker']]);
    expect((await queries.accountFills('acc_t', { limit: 10 })).map((f) => [f.fill.id, f.liquidity])).toEqual([
      ['fil_0004DDDD.000', 'taker'],
      ['fil_0002BBBB.000', 'taker'],
    ]);

    const indexes = kind === 'sqlite'
      ? (await store.db.selectFrom('sqlite_master' as never).select('name' as never).where('type' as never, '=', 'index' as never).execute()).map((r) => (r as { name: string }).name)
      : (await store.db.selectFrom('pg_indexes' as never).select('indexname' as never).where('schemaname' as never, '=', pgSchema as never).execute()).map((r) => (r as { indexname: string }).indexname);
    expect(indexes).not.toContain('orders_account');
    expect(indexes).not.toContain('fills_taker');
    expect(indexes).not.toContain('fills_maker');
  });
});

describe('account history query plans on SQLite', () => {
  it('pages an account\'s orders and fills along the history key: no scan, no sort', async () => {
    const store = await openStore({ dataDir: '/tmp', sqliteFile: ':memory:' });
    try {
      await migrateToLatest(store);
      const queries = new OrderQueries(store);
      const plans: string[] = [];
      for (const q of [queries.ordersQuery('acc_x', { limit: 50, before: 'ord_0001', status: 'open', market: 'MOON-USDC' }), queries.accountFillsQuery('acc_x', { limit: 50, before: 'fil_0001.000' })]) {
        const c = q.compile();
        const r = await store.db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${c.sql}`, [...c.parameters]));
        plans.push(r.rows.map((x) => x.detail).join('; '));
      }
      expect(plans).toHaveLength(2);
      for (const plan of plans) {
        expect(plan).toMatch(/SEARCH h USING PRIMARY KEY \(account_id=\? AND sort_key<\?\)/);
        expect(plan).not.toMatch(/TEMP B-TREE|SCAN/);
      }
    } finally {
      await store.close();
    }
  });

  it("finds one order's fills through the fills' order-id indexes, not the account's whole history", async () => {
    const store = await openStore({ dataDir: '/tmp', sqliteFile: ':memory:' });
    try {
      await migrateToLatest(store);
      const c = new OrderQueries(store).accountFillsQuery('acc_x', { limit: 50, orderId: 'ord_0001', before: 'fil_0002.000' }).compile();
      const plan = (await store.db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${c.sql}`, [...c.parameters]))).rows.map((x) => x.detail).join('; ');
      expect(plan).toMatch(/SEARCH f USING INDEX fills_taker_order \(taker_order_id=\?\)/);
      expect(plan).toMatch(/SEARCH f USING INDEX fills_maker_order \(maker_order_id=\?\)/);
      expect(plan).not.toMatch(/account_history|\bh\b|SCAN/);
    } finally {
      await store.close();
    }
  });
});
