import { Migrator, sql, type MigrationResultSet } from 'kysely';
import type { Store } from './db.js';
import { migrations } from './migrations/index.js';

async function migratorFor(store: Store): Promise<Migrator> {
  // Name the schema: without it Kysely takes another schema's migration tables in the same
  // database (another deployment or test) for ours and then fails to find them in search_path.
  const schema = store.dialect === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(store.db)).rows[0]?.schema : undefined;
  return new Migrator({
    db: store.db,
    provider: { getMigrations: async () => migrations(store.dialect) },
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
}

function applied({ error, results }: MigrationResultSet): string[] {
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return (results ?? []).map((r) => r.migrationName);
}

/** Brings the schema to the latest version; throws naming the migration that failed. */
export async function migrateToLatest(store: Store): Promise<string[]> {
  return applied(await (await migratorFor(store)).migrateToLatest());
}

/** Brings the schema to the version of migration `name` (tests of a migration's data step). */
export async function migrateTo(store: Store, name: string): Promise<string[]> {
  return applied(await (await migratorFor(store)).migrateTo(name));
}
