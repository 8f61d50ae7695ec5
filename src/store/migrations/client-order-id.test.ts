import { CompiledQuery } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStore, storeBackends } from '../../../test/support/stores.js';
import type { Store } from '../db.js';

const order = (id: string, account: string, clientOrderId: string | null) => ({
  id, account_id: account, market: 'MOON-USDC', side: 'buy' as const, type: 'limit' as const, time_in_force: 'GTC' as const, stp: 'cancel_taker', price: '1', quantity: '1',
  filled: '0', remaining: '1', notional: '0', fees: '0', status: 'open' as const, reason: null, client_order_id: clientOrderId, seq: 1, actor_kind: 'session', actor_id: 's', cancel_actor_kind: null, cancel_actor_id: null, created_at: 1, updated_at: 1,
});

/** Migration 0100: the idempotency index keyed by clientOrderId first, only for orders that have one. */
describe.each(await storeBackends())('clientOrderId index on %s', (backend) => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore(backend);
  });
  afterAll(() => store.close());

  it('keeps one order per (account, clientOrderId), the same id in two accounts, and any number without one', async () => {
    await store.db.insertInto('orders').values([order('ord_1', 'acc_a', 'x'), order('ord_2', 'acc_b', 'x'), order('ord_3', 'acc_a', null), order('ord_4', 'acc_a', null)]).execute();
    await expect(store.db.insertInto('orders').values(order('ord_5', 'acc_a', 'x')).execute()).rejects.toThrow(/unique|duplicate/i);
    const found = await store.db.selectFrom('orders').select('id').where('account_id', '=', 'acc_b').where('client_order_id', '=', 'x').execute();
    expect(found).toEqual([{ id: 'ord_2' }]);
  });

  if (backend === 'sqlite') it('answers the batch lookup of (account, clientOrderId) pairs from the new index', async () => {
    const q = store.db
      .selectFrom('orders')
      .selectAll()
      .where((eb) => eb.or([eb.and([eb('account_id', '=', 'acc_a'), eb('client_order_id', '=', 'x')]), eb.and([eb('account_id', '=', 'acc_b'), eb('client_order_id', '=', 'y')])]))
      .compile();
    const plan = await store.db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${q.sql}`, [...q.parameters]));
    const details = plan.rows.map((r) => r.detail);
    expect(details.filter((d) => d.includes('USING INDEX orders_client_order_id (client_order_id=? AND account_id=?)'))).toHaveLength(2);
    const indexes = await store.db.executeQuery<{ name: string }>(CompiledQuery.raw(`select name from sqlite_master where type = 'index' and tbl_name = 'orders'`));
    expect(indexes.rows.map((r) => r.name)).not.toContain('orders_client_id');
  });
});
