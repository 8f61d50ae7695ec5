import { afterAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { dropSchema, newIsolation } from '../../test/support/server.js';
import { PG_URL, serviceAvailable } from '../../test/support/services.js';
import { moneyType, openStore, type Store } from './db.js';
import { migrateToLatest } from './migrate.js';

const pgUp = await serviceAvailable('postgres');
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function open(kind: 'sqlite' | 'postgres'): Promise<Store> {
  if (kind === 'sqlite') {
    const store = await openStore({ dataDir: '/unused', sqliteFile: ':memory:' });
    cleanups.push(() => store.close());
    return store;
  }
  const { pgSchema } = newIsolation();
  const store = await openStore({ databaseUrl: PG_URL, pgSchema, dataDir: '/unused' });
  cleanups.push(async () => {
    await store.close();
    await dropSchema(pgSchema);
  });
  return store;
}

const kinds = [{ kind: 'sqlite' as const }, ...(pgUp ? [{ kind: 'postgres' as const }] : [])];

/** One contract, both dialects: the same code must behave the same on SQLite and PostgreSQL. */
describe.each(kinds)('store contract: $kind', async ({ kind }) => {
  const store = await open(kind);

  it('migrates to the latest version, and again without change', async () => {
    const first = await migrateToLatest(store);
    expect(first).toContain('0001_accounts');
    expect(await migrateToLatest(store)).toEqual([]);
    expect(store.dialect).toBe(kind);
  });

  it('reads epoch-ms bigint columns as numbers', async () => {
    const t = Date.UTC(2026, 10, 28, 12, 0, 0, 123);
    await store.db.insertInto('accounts').values({ id: 'acc_1', wallet: '0xaa', chain: 'ethereum', role: 'trader', created_at: t, updated_at: t }).execute();
    const row = await store.db.selectFrom('accounts').selectAll().where('id', '=', 'acc_1').executeTakeFirstOrThrow();
    expect(row.created_at).toBe(t);
    expect(typeof row.created_at).toBe('number');
  });

  it('enforces unique constraints', async () => {
    const t = Date.now();
    await expect(store.db.insertInto('accounts').values({ id: 'acc_2', wallet: '0xaa', chain: 'ethereum', role: 'trader', created_at: t, updated_at: t }).execute()).rejects.toThrow();
  });

  it('rolls a transaction back entirely when it throws, and commits when it returns', async () => {
    const t = Date.now();
    await expect(
      store.transaction(async (trx) => {
        await trx.insertInto('accounts').values({ id: 'acc_3', wallet: '0xbb', chain: 'ethereum', role: 'trader', created_at: t, updated_at: t }).execute();
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await store.db.selectFrom('accounts').select('id').where('id', '=', 'acc_3').executeTakeFirst()).toBeUndefined();
    await store.transaction(async (trx) => {
      await trx.insertInto('accounts').values({ id: 'acc_4', wallet: '0xcc', chain: 'ethereum', role: 'trader', created_at: t, updated_at: t }).execute();
    });
    expect(await store.db.selectFrom('accounts').select('id').where('id', '=', 'acc_4').executeTakeFirst()).toEqual({ id: 'acc_4' });
  });

  it('keeps money exact beyond 2^53 in moneyType columns', async () => {
    await store.db.schema.createTable('money_probe').addColumn('v', moneyType(store.dialect), (c) => c.notNull()).execute();
    const big = (2n ** 63n - 1n).toString();
    await store.db.insertInto('money_probe' as never).values({ v: big } as never).execute();
    const row = (await sql<{ v: string }>`select v from money_probe`.execute(store.db)).rows[0]!;
    expect(String(row.v)).toBe(big);
    expect(BigInt(row.v)).toBe(2n ** 63n - 1n);
  });

  it('answers ping', async () => {
    expect(await store.ping()).toBe(true);
  });
});
