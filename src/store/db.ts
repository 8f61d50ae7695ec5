import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { CompiledQuery, Kysely, PostgresDialect, SqliteAdapter, SqliteDialect, SqliteDriver, sql, type DatabaseConnection, type SqliteDialectConfig, type Transaction } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /** Runs `fn` in one transaction: committed before it resolves, rolled back if it throws. */
  transaction<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export interface StoreOptions {
  databaseUrl?: string | undefined;
  pgSchema?: string;
  dataDir: string;
  /** SQLite file name inside dataDir; ':memory:' for throwaway stores. */
  sqliteFile?: string;
}

const INT8_OID = 20;

class KyselyStore implements Store {
  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: Dialect,
  ) {}
  transaction<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(fn);
  }
  async ping(): Promise<boolean> {
    try {
      await sql`select 1`.execute(this.db);
      return true;
    } catch {
      return false;
    }
  }
  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/**
 * Opens the store: PostgreSQL when a database URL is given, else SQLite in the data dir
 * (WAL, foreign keys on, full fsync on commit so an acknowledged write survives a crash).
 */
export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    const schema = options.pgSchema ?? 'public';
    const setup = new pg.Client({ connectionString: options.databaseUrl });
    await setup.connect();
    try {
      await setup.query(`create schema if not exists "${schema}"`);
    } finally {
      await setup.end();
    }
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: 10,
      connectionTimeoutMillis: 2000,
      options: `-c search_path="${schema}"`,
      // epoch-ms columns are bigint: read them as numbers (money is numeric and stays a string)
      types: { getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser },
    });
    pool.on('error', () => {}); // idle-client errors surface on the next query instead of crashing
    return new KyselyStore(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), 'postgres');
  }
  const file = options.sqliteFile === ':memory:' ? ':memory:' : path.join(options.dataDir, options.sqliteFile ?? 'moondraft.sqlite');
  if (file !== ':memory:') {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // Created owner-only before SQLite opens it (SQLite would make it 0644 under the usual umask);
    // SQLite gives its -wal and -shm files the database file's mode.
    closeSync(openSync(file, 'a', 0o600));
  }
  const database = new SqliteDatabase(file);
  database.pragma('journal_mode = WAL');
  database.pragma('foreign_keys = ON');
  database.pragma('synchronous = FULL');
  database.pragma('busy_timeout = 5000');
  // Statement journals (a multi-row insert or upsert inside a transaction keeps one, to undo just
  // that statement) in memory instead of a temporary file: they are never needed after a crash.
  database.pragma('temp_store = MEMORY');
  // Checkpoint every 8,000 WAL pages (32 MiB) instead of SQLite's 1,000. A group commit of orders
  // rewrites the same hot pages (balances, per-account index leaves, the chain head) that the last
  // one did; a checkpoint copies each page once however often it was rewritten, so fewer, larger
  // checkpoints copy and sync far fewer pages per order (about +10% durable orders/s, measured).
  database.pragma('wal_autocheckpoint = 8000');
  return new KyselyStore(new Kysely<Database>({ dialect: new TransactionalSqliteDialect({ database: withStatementCache(database) }) }), 'sqlite');
}

/**
 * SQLite's DDL is transactional, but Kysely's SQLite adapter says it is not, so its migrator would
 * run migrations statement by statement: a crash in the middle of one (a backfill, say) would leave
 * a half-made table behind that the next start cannot get past. Saying so, migrations run in one
 * transaction, as on PostgreSQL: all of them apply, or none.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

/**
 * Kysely begins SQLite transactions with a deferred BEGIN: the write lock is taken at the first
 * write. In WAL mode, if another process (a CLI command such as `moondraft role`, which opens the
 * same file) commits between a transaction's first read and its first write, that write fails
 * with SQLITE_BUSY_SNAPSHOT: its snapshot is stale, and waiting cannot help. BEGIN IMMEDIATE takes
 * the write lock at the start instead (another process's writer waits for it, up to busy_timeout),
 * so what a transaction read stays true until it commits. Every transaction here writes, or reads
 * to decide what to write; none is a long read.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class TransactionalSqliteDialect extends SqliteDialect {
  constructor(private readonly settings: SqliteDialectConfig) {
    super(settings);
  }
  override createDriver() {
    return new ImmediateSqliteDriver(this.settings);
  }
  override createAdapter() {
    return new TransactionalDdlSqliteAdapter();
  }
}

const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely's SQLite driver prepares every query anew; compiling the same SQL again costs more than
 * running it. Repeated SQL (nearly all of it: queries differ by parameters) reuses its prepared
 * statement. A statement busy iterating is never shared: a second prepare is made then.
 */
function withStatementCache(database: SqliteDatabase.Database) {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => database.close(),
    prepare(sql: string) {
      const hit = cache.get(sql);
      if (hit && !hit.busy) return hit;
      const statement = database.prepare(sql);
      if (!hit) {
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
        cache.set(sql, statement);
      }
      return statement;
    },
  };
}

/** Column type for integer minor units of money: exact on both dialects. */
export function moneyType(dialect: Dialect) {
  return dialect === 'postgres' ? sql`numeric(39,0)` : sql`text`;
}
