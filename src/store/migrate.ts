import { Migrator, sql, type DatabaseIntrospector, type Kysely, type MigrationResultSet, type SchemaMetadata, type TableMetadata } from 'kysely';
import type { Store } from './db.js';
import { migrations } from './migrations/index.js';

/**
 * What the migrator needs to know of the database (does our schema and its migration tables
 * exist), asked of our own schema only. Kysely's PostgreSQL introspector lists the tables of every
 * schema in the database and calls has_schema_privilege() on each name: a schema another client
 * drops meanwhile (another deployment or test sharing the database) fails that call with "schema
 * … does not exist", and with it our start-up.
 */
class OwnSchemaIntrospector implements DatabaseIntrospector {
  constructor(
    private readonly db: Kysely<unknown>,
    private readonly schema: string,
  ) {}
  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`select nspname as name from pg_catalog.pg_namespace where nspname = ${this.schema}`.execute(this.db);
    return rows;
  }
  async getTables(): Promise<TableMetadata[]> {
    const { rows } = await sql<{ name: string }>`select c.relname as name from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = ${this.schema} and c.relkind in ('r', 'p', 'v')`.execute(this.db);
    return rows.map((r) => ({ name: r.name, schema: this.schema, isView: false, columns: [] }));
  }
  async getMetadata(): Promise<{ tables: TableMetadata[] }> {
    return { tables: await this.getTables() };
  }
}

async function migratorFor(store: Store): Promise<Migrator> {
  // Name the schema: without it Kysely takes another schema's migration tables in the same
  // database (another deployment or test) for ours and then fails to find them in search_path.
  const schema = store.dialect === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(store.db)).rows[0]?.schema : undefined;
  let db = store.db as Kysely<unknown>;
  if (schema) {
    const real = db;
    const introspection = new OwnSchemaIntrospector(real, schema);
    // The same Kysely instance (its methods bound to it), with the introspection above.
    db = new Proxy(real, {
      get(target, property) {
        if (property === 'introspection') return introspection;
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }
  return new Migrator({
    db,
    provider: { getMigrations: async () => migrations(store.dialect) },
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
}

function applied({ error, results }: MigrationResultSet): string[] {
  const failed = results?.find((r) => r.status === 'Error');
  // Kysely refuses, before running any migration, a database holding one this version does not
  // know: a newer version migrated it (an operator rolling back). Say so, not "corrupted".
  const newer = !failed && error instanceof Error ? /previously executed migration (\S+) is missing/.exec(error.message)?.[1] : undefined;
  if (newer) {
    throw new Error(`the database was migrated by a newer version of Moondraft (migration ${newer} is not known to this one); nothing was changed: run that version again, or restore the backup taken before the upgrade`, { cause: error });
  }
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
