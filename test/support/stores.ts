import { randomBytes } from 'node:crypto';
import { openStore, type Store } from '../../src/store/db.js';
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
    ping: () => store.ping(),
    async close() {
      await store.close();
      if (!schema) await dropSchema(pgSchema);
    },
  };
}
