import { Migrator, sql } from 'kysely';
import type { Store } from './db.js';
import { migrations } from './migrations/index.js';

/** Brings the schema to the latest version; throws naming the migration that failed. */
export async function migrateToLatest(store: Store): Promise<string[]> {
  // On PostgreSQL name the schema of the migration tables: without it Kysely looks for them in
  // every schema, and another schema's tables (a second deployment, a parallel test) fool it.
  const schema = store.dialect === 'postgres' ? (await sql<{ s: string }>`select current_schema() as s`.execute(store.db)).rows[0]?.s : undefined;
  const migrator = new Migrator({
    db: store.db,
    provider: { getMigrations: async () => migrations(store.dialect) },
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return (results ?? []).map((r) => r.migrationName);
}
