import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from './db.js';
import { migrateToLatest } from './migrate.js';

/** The SQLite store reuses prepared statements for repeated SQL; results must be those of fresh ones. */
describe('SQLite prepared-statement reuse', () => {
  let dir: string;
  let store: Store;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moondraft-stmt-'));
    store = await openStore({ dataDir: dir });
    await migrateToLatest(store);
    const rows = Array.from({ length: 50 }, (_, i) => ({ id: `acc_${i}`, wallet: `0x${String(i).padStart(40, '0')}`, chain: 'ethereum' as const, role: 'trader' as const, created_at: i, updated_at: i }));
    await store.db.insertInto('accounts').values(rows).execute();
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the same query with other parameters answers for those parameters', async () => {
    for (let i = 0; i < 50; i++) {
      const row = await store.db.selectFrom('accounts').select(['id', 'created_at']).where('id', '=', `acc_${i}`).executeTakeFirst();
      expect(row).toEqual({ id: `acc_${i}`, created_at: i });
    }
    expect(await store.db.selectFrom('accounts').select('id').where('id', '=', 'acc_none').executeTakeFirst()).toBeUndefined();
  });

  it('a statement left part-way through a stream is reused correctly afterwards', async () => {
    const query = () => store.db.selectFrom('accounts').select(['id']).where('created_at', '<', 5).orderBy('created_at');
    const seen: string[] = [];
    for await (const row of query().stream()) {
      seen.push(row.id);
      if (seen.length === 2) break; // the iteration stops with the statement half read
    }
    expect(seen).toEqual(['acc_0', 'acc_1']);
    expect((await query().execute()).map((r) => r.id)).toEqual(['acc_0', 'acc_1', 'acc_2', 'acc_3', 'acc_4']);
    const all: string[] = [];
    for await (const row of query().stream()) all.push(row.id);
    expect(all).toEqual(['acc_0', 'acc_1', 'acc_2', 'acc_3', 'acc_4']);
  });

  it('writes through a reused statement commit and roll back with their transaction', async () => {
    const setRole = (role: string) => store.db.updateTable('accounts').set({ role }).where('id', '=', 'acc_7').execute();
    await setRole('developer');
    await expect(
      store.transaction(async (trx) => {
        await trx.updateTable('accounts').set({ role: 'admin' }).where('id', '=', 'acc_7').execute();
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect((await store.db.selectFrom('accounts').select('role').where('id', '=', 'acc_7').executeTakeFirstOrThrow()).role).toBe('developer');
    await setRole('trader');
    expect((await store.db.selectFrom('accounts').select('role').where('id', '=', 'acc_7').executeTakeFirstOrThrow()).role).toBe('trader');
  });
});
