import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InsertQueryNode, PrimitiveValueListNode, sql, ValuesNode, type Kysely, type KyselyPlugin } from 'kysely';
import { dropSchema, newIsolation } from '../../test/support/server.js';
import { PG_URL, serviceAvailable } from '../../test/support/services.js';
import { ConcurrentUpdateError } from '../trading/retry.js';
import { upsertRows } from '../trading/upsert.js';
import { insertRows } from './bulk.js';
import { moneyType, openStore, type Store } from './db.js';
import { migrateToLatest } from './migrate.js';
import type { Database } from './schema.js';

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

  it('inserts each call\'s own values through a reused statement shape, and rows of mixed columns too', async () => {
    const row = (i: number) => ({ id: `acc_bulk${i}`, wallet: `0xb${i}`, chain: 'ethereum' as const, role: 'trader' as const, created_at: i, updated_at: i });
    const insert = (rows: ReturnType<typeof row>[]) => insertRows(store.db, 'test insert accounts', rows, (r) => store.db.insertInto('accounts').values(r));
    expect(await insert([row(1), row(2)])).toBe(2n);
    expect(await insert([row(3), row(4)])).toBe(2n); // same shape: the compiled SQL is reused
    expect(await insert([row(5)])).toBe(1n);
    const { updated_at: _, ...partial } = row(7);
    expect(await insertRows(store.db, 'test insert accounts', [row(6), { ...partial, updated_at: 70 }], (r) => store.db.insertInto('accounts').values(r))).toBe(2n);
    const stored = await store.db.selectFrom('accounts').select(['id', 'wallet', 'created_at', 'updated_at']).where('id', 'like', 'acc_bulk%').orderBy('id').execute();
    expect(stored).toEqual([1, 2, 3, 4, 5, 6, 7].map((i) => ({ id: `acc_bulk${i}`, wallet: `0xb${i}`, created_at: i, updated_at: i === 7 ? 70 : i })));
  });

  it('a reused statement shape never binds an expression as a value, nor skips a plugin', async () => {
    const row = (i: number, wallet: unknown) => ({ id: `acc_expr${i}`, wallet, chain: 'ethereum' as const, role: 'trader' as const, created_at: i, updated_at: i });
    const insert = (db: Kysely<Database>, rows: object[]) => insertRows(db, 'test insert accounts expr', rows, (r) => db.insertInto('accounts').values(r as never));
    expect(await insert(store.db, [row(1, '0xplain')])).toBe(1n); // first use: plain values, the shape is kept
    expect(await insert(store.db, [row(2, sql<string>`lower('0xEXPR')`)])).toBe(1n); // same shape, an expression
    expect(await insert(store.db, [row(3, () => sql<string>`lower('0xFACTORY')`)])).toBe(1n);
    const upper: KyselyPlugin = {
      transformQuery: ({ node }) => (InsertQueryNode.is(node) ? { ...node, values: node.values && ValuesNode.is(node.values) ? ValuesNode.create(node.values.values.map((v) => (PrimitiveValueListNode.is(v) ? PrimitiveValueListNode.create(v.values.map((x) => (typeof x === 'string' && x.startsWith('0x') ? x.toUpperCase() : x))) : v))) : node.values } : node),
      transformResult: async ({ result }) => result,
    };
    expect(await insert(store.db.withPlugin(upper), [row(4, '0xplugin')])).toBe(1n);
    const stored = await store.db.selectFrom('accounts').select(['id', 'wallet']).where('id', 'like', 'acc_expr%').orderBy('id').execute();
    expect(stored.map((r) => r.wallet)).toEqual(['0xplain', '0xexpr', '0xfactory', '0XPLUGIN']);
  });

  it('a versioned upsert through a reused shape updates current rows and refuses a stale one', async () => {
    const bal = (owner: string, available: string, version: number) => ({ owner, asset: 'USDC', available, held: '0', updated_at: 1, version });
    const upsert = (rows: ReturnType<typeof bal>[]) => store.transaction((trx) => upsertRows(trx, 'balances', ['owner', 'asset'], rows, ['available', 'held', 'updated_at', 'version'], { versioned: true }));
    await upsert([bal('o1', '10', 1), bal('o2', '20', 1)]); // inserted
    await upsert([bal('o1', '11', 2), bal('o2', '21', 2)]); // updated, same shape
    await expect(upsert([bal('o1', '12', 3), bal('o2', '99', 2)])).rejects.toBeInstanceOf(ConcurrentUpdateError); // o2 is at 2 already
    const stored = await store.db.selectFrom('balances').select(['owner', 'available', 'version']).where('owner', 'in', ['o1', 'o2']).orderBy('owner').execute();
    expect(stored.map((r) => [r.owner, String(r.available), Number(r.version)])).toEqual([
      ['o1', '11', 2],
      ['o2', '21', 2],
    ]);
  });

  it('answers ping', async () => {
    expect(await store.ping()).toBe(true);
  });
});

/** A store on a SQLite file (snapshots need a connection of their own), or PostgreSQL. */
async function openDurable(kind: 'sqlite' | 'postgres'): Promise<Store> {
  if (kind === 'postgres') return open('postgres');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'md-snapshot-'));
  const store = await openStore({ dataDir, sqliteFile: 'snap.sqlite' });
  cleanups.push(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return store;
}

describe.each(kinds)('store snapshot: $kind', ({ kind }) => {
  it('reads one state throughout while another writer commits, without holding that writer up', async () => {
    const store = await openDurable(kind);
    await migrateToLatest(store);
    const count = async (db: Kysely<Database>) => Number((await db.selectFrom('ip_blocks').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const block = (address: string) => store.transaction((trx) => trx.insertInto('ip_blocks').values({ target: address, reason: 'test', created_at: 1, expires_at: null, created_by: 'test' }).execute());
    await block('192.0.2.1');
    const seen = await store.snapshot(async (db) => {
      const before = await count(db);
      // A writer commits meanwhile: it is not blocked by the reader, and the reader does not see it.
      await block('192.0.2.2');
      const after = await count(db);
      return [before, after];
    });
    expect(seen).toEqual([1, 1]);
    expect(await count(store.db)).toBe(2);
    // Read-only: a write inside the snapshot is refused, and changes nothing.
    await expect(store.snapshot((db) => db.insertInto('ip_blocks').values({ target: '192.0.2.3', reason: 'test', created_at: 1, expires_at: null, created_by: 'test' }).execute())).rejects.toThrow(/read-?only/i);
    // The error that ended the read is the one reported.
    await expect(store.snapshot(() => Promise.reject(new Error('reader failed')))).rejects.toThrow('reader failed');
    expect(await count(store.db)).toBe(2);
  });
});

