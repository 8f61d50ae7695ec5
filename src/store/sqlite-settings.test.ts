import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from './db.js';

/** The SQLite connection's settings: durability (WAL, a full fsync per commit) and write cost. */
describe('SQLite connection settings', () => {
  let dir: string;
  let store: Store;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moondraft-pragma-'));
    store = await openStore({ dataDir: dir });
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const pragma = async (name: string) => Object.values((await sql.raw(`pragma ${name}`).execute(store.db)).rows[0] as Record<string, unknown>)[0];

  it('journals to a WAL synced in full on every commit, with foreign keys enforced', async () => {
    expect(await pragma('journal_mode')).toBe('wal');
    expect(await pragma('synchronous')).toBe(2); // FULL
    expect(await pragma('foreign_keys')).toBe(1);
  });

  it('keeps statement journals in memory and checkpoints every 8,000 WAL pages', async () => {
    expect(await pragma('temp_store')).toBe(2); // MEMORY
    expect(await pragma('wal_autocheckpoint')).toBe(8000);
  });
});
