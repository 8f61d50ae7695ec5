import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from './db.js';
import { migrateToLatest } from './migrate.js';

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

/**
 * Another process on the same file (a CLI command while the server runs) must never make a
 * transaction fail half-way: it waits for the transaction instead of committing under it.
 */
describe('SQLite transactions and another process writing the same file', () => {
  let dir: string;
  let server: Store;
  let cli: Store;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moondraft-immediate-'));
    server = await openStore({ dataDir: dir });
    await migrateToLatest(server);
    cli = await openStore({ dataDir: dir });
    await sql`pragma busy_timeout = 50`.execute(cli.db);
  });
  afterAll(async () => {
    await cli.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const limit = (account: string) => ({ account_id: account, daily_notional: '1', updated_by: 'test', updated_at: 1 });

  it('a write from the other connection waits for a transaction that has only read so far; the transaction commits', async () => {
    let cliError: unknown = null;
    await server.transaction(async (trx) => {
      await trx.selectFrom('trading_limits').selectAll().execute();
      // The other process tries to commit between this transaction's read and its write.
      cliError = await cli.db.insertInto('trading_limits').values(limit('acc_cli')).execute().then(() => null, (err: unknown) => err);
      await trx.insertInto('trading_limits').values(limit('acc_server')).execute();
    });
    expect((cliError as { code?: string } | null)?.code).toBe('SQLITE_BUSY');
    // Once the transaction is over, the other process's write goes through.
    await cli.db.insertInto('trading_limits').values(limit('acc_cli')).execute();
    const rows = await server.db.selectFrom('trading_limits').select('account_id').orderBy('account_id').execute();
    expect(rows.map((r) => r.account_id)).toEqual(['acc_cli', 'acc_server']);
  });
});

/**
 * The server thread beside the order thread: when the other connection holds the write lock, its
 * statements wait without stopping the thread (timers and requests go on), counted in the shared
 * waiters counter the order thread reads, and go through once the lock is free.
 */
describe('a yielding SQLite connection (the server thread beside the order thread)', () => {
  let dir: string;
  let holder: Database.Database;
  let server: Store;
  const waiters = new SharedArrayBuffer(4);
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moondraft-yielding-'));
    const first = await openStore({ dataDir: dir });
    await migrateToLatest(first);
    await first.close();
    server = await openStore({ dataDir: dir, sqliteWriteWaiters: waiters });
    holder = new Database(path.join(dir, 'moondraft.sqlite'));
  });
  afterAll(async () => {
    holder.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const limit = (account: string) => ({ account_id: account, daily_notional: '1', updated_by: 'test', updated_at: 1 });

  it('waits for the lock without blocking its thread, counted as a waiter, then commits', async () => {
    holder.prepare('begin immediate').run();
    const written = server.transaction((trx) => trx.insertInto('trading_limits').values(limit('acc_yield')).execute());
    const plain = server.db.insertInto('trading_limits').values(limit('acc_plain')).execute();
    // The thread is free: a timer fires while both wait for the lock.
    let ticks = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        ticks += 1;
        if (ticks === 5) {
          clearInterval(timer);
          resolve();
        }
      }, 5);
    });
    expect(Atomics.load(new Int32Array(waiters), 0)).toBeGreaterThanOrEqual(1);
    holder.prepare('commit').run();
    await Promise.all([written, plain]);
    expect(Atomics.load(new Int32Array(waiters), 0)).toBe(0);
    const rows = await server.db.selectFrom('trading_limits').select('account_id').where('account_id', 'in', ['acc_yield', 'acc_plain']).orderBy('account_id').execute();
    expect(rows.map((r) => r.account_id)).toEqual(['acc_plain', 'acc_yield']);
  });
});
