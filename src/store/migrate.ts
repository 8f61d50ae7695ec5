import { Migrator, sql } from 'kysely';
import type { Store } from './db.js';
import { migrations } from './migrations/index.js';

/** Brings the schema to the latest version; throws naming the migration that failed. */
export async function migrateToLatest(store: Store): Promise<string[]> {
  // Kysely looks for its migration tables in every schema unless told which one: with another
  // schema in the same database already migrated (tests, several deployments) it would skip
  // creating them here and then fail to find them. Pin them to the connection's schema.
  const schema = store.dialect === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(store.db)).rows[0]?.schema : undefined;
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
