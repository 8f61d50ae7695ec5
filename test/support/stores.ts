import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openStore, type Store, type StoreOptions } from '../../src/store/db.js';
import { migrateToLatest } from '../../src/store/migrate.js';
import { dropSchema } from './server.js';
import { PG_URL, serviceAvailable } from './services.js';

export type Backend = 'sqlite' | 'postgres';

/** Which store backends a suite can run on here (PostgreSQL only when it answers). */
export async function storeBackends(): Promise<Backend[]> {
  return (await serviceAvailable('postgres')) ? ['sqlite', 'postgres'] : ['sqlite'];
}

/** A migrated, throwaway store: in-memory SQLite, or a fresh PostgreSQL schema dropped on close. */
export async function openTestStore(backend: Backend, schema?: string): Promise<Store & { schema?: string }> {
  if (backend === 'sqlite') {
    const store = await openStore({ dataDir: '/tmp', sqliteFile: ':memory:' });
    await migrateToLatest(store);
    return store;
  }
  const pgSchema = schema ?? `t_${randomBytes(6).toString('hex')}`;
  const store = await openStore({ databaseUrl: PG_URL, pgSchema, dataDir: '/tmp' });
  await migrateToLatest(store);
  return {
    db: store.db,
    dialect: store.dialect,
    schema: pgSchema,
    transaction: (fn) => store.transaction(fn),
    snapshot: (fn) => store.snapshot(fn),
    ping: () => store.ping(),
    limitQueries: (ms) => store.limitQueries(ms),
    async close() {
      await store.close();
      if (!schema) await dropSchema(pgSchema);
    },
  };
}

/**
 * A migrated store for the order thread, which opens its own connection with the options returned:
 * a SQLite file in a fresh private dir (removed on close), or a fresh PostgreSQL schema.
 */
export async function openSharedTestStore(backend: Backend): Promise<{ store: Store; options: StoreOptions; dataDir: string; close(): Promise<void> }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-store-'));
  const options: StoreOptions = backend === 'sqlite' ? { dataDir } : { databaseUrl: PG_URL, pgSchema: `t_${randomBytes(6).toString('hex')}`, dataDir };
  const store = await openStore(options);
  await migrateToLatest(store);
  return {
    store,
    options,
    dataDir,
    async close() {
      await store.close();
      if (options.pgSchema) await dropSchema(options.pgSchema);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
