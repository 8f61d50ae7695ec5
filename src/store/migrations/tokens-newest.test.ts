import { CompiledQuery } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStore, storeBackends } from '../../../test/support/stores.js';
import type { Store } from '../db.js';

const token = (symbol: string, createdAt: number) => ({
  symbol, name: symbol, chain: 'evm', supply: '1', description: null, website: null, image_url: null, created_by: 'acc_a', created_at: createdAt, updated_at: createdAt,
});

/** Migration 0110: the token list's order (newest first, then symbol) as an index. */
describe.each(await storeBackends())('tokens_newest index on %s', (backend) => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore(backend);
  });
  afterAll(() => store.close());

  it('lists newest first, by symbol within a millisecond, and the cursor continues after a tie', async () => {
    const symbols = ['AAA', 'BBB', 'CCC', 'DDD'];
    await store.db.insertInto('assets').values(symbols.map((symbol) => ({ symbol, name: symbol, decimals: 0, faucet: 0, created_by: null, created_at: 1, updated_at: 1 }))).execute();
    await store.db.insertInto('tokens').values([token('AAA', 2), token('BBB', 2), token('CCC', 1), token('DDD', 3)]).execute();
    const list = store.db.selectFrom('tokens').select('symbol').orderBy('created_at', 'desc').orderBy('symbol');
    expect((await list.execute()).map((r) => r.symbol)).toEqual(['DDD', 'AAA', 'BBB', 'CCC']);
    const after = await list.where((eb) => eb.or([eb('created_at', '<', 2), eb.and([eb('created_at', '=', 2), eb('symbol', '>', 'AAA')])])).execute();
    expect(after.map((r) => r.symbol)).toEqual(['BBB', 'CCC']);
  });

  if (backend === 'sqlite') it('pages the whole list from the index, with no sort of the table', async () => {
    const q = store.db
      .selectFrom('tokens')
      .selectAll()
      .where((eb) => eb.or([eb('created_at', '<', 2), eb.and([eb('created_at', '=', 2), eb('symbol', '>', 'AAA')])]))
      .orderBy('created_at', 'desc')
      .orderBy('symbol')
      .limit(2)
      .compile();
    const plan = await store.db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${q.sql}`, [...q.parameters]));
    const details = plan.rows.map((r) => r.detail).join(' | ');
    expect(details).toContain('tokens_newest');
    expect(details).not.toContain('TEMP B-TREE');
  });
});
