import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { CompiledQuery, Kysely, PostgresDialect, SqliteAdapter, SqliteDialect, SqliteDriver, sql, type DatabaseConnection, type QueryResult, type SqliteDialectConfig, type Transaction } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /** Runs `fn` in one transaction: committed before it resolves, rolled back if it throws. */
  transaction<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T>;
  /**
   * Runs the read-only `fn` on one consistent snapshot of the store, while writers (other processes
   * included) go on: PostgreSQL, a repeatable-read read-only transaction; a SQLite file, a read
   * transaction on a read-only connection of its own, so the server's connection is not held. An
   * in-memory SQLite database has no other writer: `fn` reads it directly.
   */
  snapshot<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T>;
  /** Whether the store answers (false after `timeoutMs`, default 2 s, without an answer). */
  ping(timeoutMs?: number): Promise<boolean>;
  /**
   * From now on (a server, once migrated), a PostgreSQL statement not answered within `ms` fails
   * with a `store_deadline` error (503, see storeUnavailable) and its connection is dropped (the
   * pool opens another): a database that stops answering, a frozen network path, no longer holds
   * requests for ever. 0: no deadline. SQLite (in process, bounded by its busy timeout) ignores it.
   */
  limitQueries(ms: number): void;
  close(): Promise<void>;
}

export interface StoreOptions {
  databaseUrl?: string | undefined;
  pgSchema?: string;
  dataDir: string;
  /** SQLite file name inside dataDir; ':memory:' for throwaway stores. */
  sqliteFile?: string;
  /**
   * SQLite, for a thread that must not block (the server thread, beside the order thread on the
   * same file): a statement that finds the database locked waits without holding the thread and
   * tries again (busy_timeout still bounds it), counted in this shared counter meanwhile, so that
   * the order thread lets it in between two of its transactions (see YieldingConnection).
   */
  sqliteWriteWaiters?: SharedArrayBuffer | undefined;
}

const INT8_OID = 20;

/** Errors of transactions whose COMMIT was sent (see failedAtCommit). */
const commitFailures = new WeakSet<object>();

/** Marks `err` as a failure of a transaction's COMMIT: whether it took effect is unknown. */
export function markFailedAtCommit(err: unknown): void {
  if (typeof err === 'object' && err !== null) commitFailures.add(err);
}

/** Whether `err` ended a transaction at its COMMIT (Store.transaction): its outcome is unknown. */
export function failedAtCommit(err: unknown): boolean {
  return typeof err === 'object' && err !== null && commitFailures.has(err);
}

/** Node's codes of a connection that could not be made or was lost. */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
/**
 * node-postgres's errors without a code: the pool could not connect in time, the connection
 * dropped, a client that lost its connection was used.
 */
const PG_CONNECTION_MESSAGES = ['Connection terminated', 'timeout exceeded when trying to connect', 'is not queryable', 'Query read timeout'];

/** The code of a statement that did not answer within the store's deadline (Store.limitQueries). */
export const STORE_DEADLINE = 'store_deadline';

/**
 * Whether `err` says the store is unavailable for now (rather than that this request or the code
 * is at fault): no connection could be made or it was lost (a PostgreSQL restart, failover or
 * partition), the pool found none free in time, PostgreSQL is shutting down, out of connections,
 * of disk or of memory, or cancelled the statement (statement_timeout); SQLite's write lock held
 * past the busy timeout, a full disk, an I/O error. Such a request is answered 503
 * `service_unavailable`: nothing it asked was done (a transaction that failed before its COMMIT
 * is rolled back). Not an error at COMMIT (failedAtCommit): its outcome is unknown, a 500.
 */
export function storeUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null || failedAtCommit(err)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (CONNECTION_CODES.has(code) || code === STORE_DEADLINE) return true;
    // PostgreSQL SQLSTATE: 08 connection exception, 53 insufficient resources, 57P0x shutting
    // down / cannot connect now, 57014 statement cancelled (statement_timeout), 25P03 idle in
    // transaction timeout.
    if (/^(08|53)[0-9A-Z]{3}$/.test(code) || /^57P0[0-9]$/.test(code) || code === '57014' || code === '25P03') return true;
    if (/^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN)/.test(code)) return true;
  }
  const message = (err as { message?: unknown }).message;
  return code === undefined && typeof message === 'string' && PG_CONNECTION_MESSAGES.some((m) => message.includes(m));
}
/** Statements that change nothing: a read, or a transaction's own control. */
const NOT_A_WRITE = /^\s*(select|show|begin|start|commit|rollback|savepoint|release|set|values)\b/i;

/**
 * Guards every statement of a pooled PostgreSQL connection:
 *
 * - Its deadline (`deadline.ms`, read per statement; 0: none, see Store.limitQueries). A
 *   statement not answered in time fails with STORE_DEADLINE and the connection is never used
 *   again: what it was doing is unknown and it may never answer (the pool discards it when it is
 *   released). Within a transaction the ROLLBACK that follows fails on the dead connection, which
 *   ends the transaction too; one whose COMMIT timed out is marked failedAtCommit by
 *   Store.transaction.
 * - An honest outcome for a write sent outside a transaction (it commits by itself): one whose
 *   connection was lost or timed out may have committed, so its error is marked failedAtCommit
 *   (outcome unknown, 500), never a 503 that says nothing was done.
 *
 * Cursors (streams) are left alone: their reads are the caller's to bound.
 */
function guard(client: pg.PoolClient, deadline: { ms: number }): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  let inTransaction = false;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const first = args[0] as string | { text?: unknown } | undefined;
    const text = typeof first === 'string' ? first : typeof first?.text === 'string' ? first.text : '';
    if (/^\s*(begin|start)\b/i.test(text)) inTransaction = true;
    const autocommitWrite = !inTransaction && text !== '' && !NOT_A_WRITE.test(text);
    if (/^\s*(commit|rollback)\b/i.test(text)) inTransaction = false;
    const pending = query(...args);
    if (!(pending instanceof Promise)) return pending;
    const ms = deadline.ms;
    const unknownIfLost = (err: unknown) => {
      if (autocommitWrite && storeUnavailable(err)) markFailedAtCommit(err);
      return err;
    };
    if (ms <= 0) return pending.catch((err: unknown) => Promise.reject(unknownIfLost(err)));
    return new Promise((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(unknownIfLost(Object.assign(new Error(`the database did not answer a statement within ${ms} ms`), { code: STORE_DEADLINE })));
        // Never used again: not queryable from now (the pool discards it when it is released, and a
        // statement sent to it meanwhile fails at once), and its socket is destroyed, which fails
        // the statement still pending (that failure, one error object pg also hands to anything
        // queued behind it, is not this statement's answer any more: it is ignored here).
        (client as unknown as { _queryable?: boolean })._queryable = false;
        (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
      }, ms);
      pending.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!timedOut) reject(unknownIfLost(err));
        },
      );
    });
  };
}

/** How long /health waits for the store (see ping). */
const PING_TIMEOUT_MS = 2000;

class KyselyStore implements Store {
  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: Dialect,
    /** The SQLite file, for snapshots read on a connection of their own. */
    private readonly sqliteFile?: string,
    /** PostgreSQL: the statement deadline its pool's connections read (see limitQueries). */
    private readonly queryDeadline?: { ms: number },
  ) {}
  limitQueries(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`store: a query deadline must be 0 or more ms, got ${String(ms)}`);
    if (this.queryDeadline) this.queryDeadline.ms = ms;
  }
  transaction<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    let committing = false;
    return this.db
      .transaction()
      .execute(async (trx) => {
        const result = await fn(trx);
        committing = true;
        return result;
      })
      .catch((err: unknown) => {
        // Past the callback only COMMIT (or the ROLLBACK after it) can fail: whether the
        // transaction took effect is unknown, which an answer must not hide (see storeUnavailable).
        if (committing) markFailedAtCommit(err);
        throw err;
      });
  }
  async snapshot<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    if (this.dialect === 'postgres') return this.db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(fn);
    if (this.sqliteFile === undefined) return fn(this.db);
    const reader = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SqliteDatabase(this.sqliteFile, { readonly: true, fileMustExist: true }) }) });
    try {
      return await reader.connection().execute(async (conn) => {
        // A deferred BEGIN: the snapshot is taken at the first read and kept until the end (WAL).
        await sql`begin`.execute(conn);
        let result: T;
        try {
          result = await fn(conn);
        } catch (err) {
          // The error that ended the read, not one of ending the transaction (a failure may have ended it already).
          await sql`rollback`.execute(conn).catch(() => undefined);
          throw err;
        }
        await sql`rollback`.execute(conn);
        return result;
      });
    } finally {
      await reader.destroy();
    }
  }
  /**
   * Whether the store answers within `timeoutMs`. A database that stopped answering mid-connection
   * (a network partition, a frozen host) never fails the query: without the bound, a readiness
   * probe would hang instead of reporting the store down.
   */
  async ping(timeoutMs = PING_TIMEOUT_MS): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    // A query left hanging settles later (or never): its outcome no longer matters, but must not
    // become an unhandled rejection.
    const answered = sql`select 1`.execute(this.db).then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([answered, timedOut]);
    } finally {
      clearTimeout(timer);
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
    // Bounded like the pool's connections: an unreachable database fails the start (or an order
    // thread's restart) instead of hanging on it.
    const setup = new pg.Client({ connectionString: options.databaseUrl, connectionTimeoutMillis: 2000 });
    await setup.connect();
    try {
      try {
        await setup.query(`create schema if not exists "${schema}"`);
      } catch (err) {
        // IF NOT EXISTS does not hold against a concurrent CREATE SCHEMA (processes of a scaled-out
        // deployment starting together): the loser fails on pg_namespace's unique index although
        // the schema now exists, which is all this step is for.
        const made = await setup.query('select 1 from pg_catalog.pg_namespace where nspname = $1', [schema]);
        if (made.rowCount === 0) throw err;
      }
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
    // A client in use has no 'error' listener (the pool removes its own while the client is checked
    // out): a connection that drops in the middle of a query (a PostgreSQL restart or failover) would
    // emit an unhandled 'error' and crash the process. The query itself fails with that error, which
    // is how the caller learns of it; the pool then discards the client.
    const deadline = { ms: 0 };
    pool.on('connect', (client) => {
      client.on('error', () => {});
      guard(client, deadline);
    });
    return new KyselyStore(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), 'postgres', undefined, deadline);
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
  // A yielding connection handles SQLITE_BUSY itself, without blocking its thread (see below).
  database.pragma(`busy_timeout = ${options.sqliteWriteWaiters ? 0 : BUSY_TIMEOUT_MS}`);
  // Statement journals (a multi-row insert or upsert inside a transaction keeps one, to undo just
  // that statement) in memory instead of a temporary file: they are never needed after a crash.
  database.pragma('temp_store = MEMORY');
  // Checkpoint every 8,000 WAL pages (32 MiB) instead of SQLite's 1,000. A group commit of orders
  // rewrites the same hot pages (balances, per-account index leaves, the chain head) that the last
  // one did; a checkpoint copies each page once however often it was rewritten, so fewer, larger
  // checkpoints copy and sync far fewer pages per order (about +10% durable orders/s, measured).
  database.pragma('wal_autocheckpoint = 8000');
  const waiters = options.sqliteWriteWaiters ? new Int32Array(options.sqliteWriteWaiters) : undefined;
  return new KyselyStore(new Kysely<Database>({ dialect: new TransactionalSqliteDialect({ database: withStatementCache(database) }, waiters) }), 'sqlite', file === ':memory:' ? undefined : file);
}

/** How long a SQLite statement waits for another connection's write lock before failing. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * A SQLite connection whose statements, when the database is locked by another connection, wait
 * asynchronously and try again instead of sleeping inside SQLite's busy handler, which would stop
 * the whole thread (for the server thread: every request) for as long as the lock is held.
 * SQLITE_BUSY can only come before a statement has done anything (transactions begin IMMEDIATE,
 * so inside one no statement waits for a lock), so trying again is safe. While it waits it counts
 * itself in `waiters`: the order thread, which would otherwise begin its next transaction the
 * moment the last one commits and never leave a gap, waits for that count to fall first.
 */
class YieldingConnection implements DatabaseConnection {
  constructor(
    private readonly inner: DatabaseConnection,
    private readonly waiters: Int32Array,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    let deadline: number | undefined;
    let delay = 1;
    try {
      for (;;) {
        try {
          return await this.inner.executeQuery<R>(query);
        } catch (err) {
          if (!isBusy(err)) throw err;
          if (deadline === undefined) {
            deadline = Date.now() + BUSY_TIMEOUT_MS;
            Atomics.add(this.waiters, 0, 1);
          } else if (Date.now() >= deadline) throw err;
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 16);
        }
      }
    } finally {
      if (deadline !== undefined) Atomics.sub(this.waiters, 0, 1);
    }
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
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
  constructor(
    config: SqliteDialectConfig,
    private readonly waiters: Int32Array | undefined,
  ) {
    super(config);
  }
  override async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await super.acquireConnection();
    return this.waiters ? new YieldingConnection(connection, this.waiters) : connection;
  }
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class TransactionalSqliteDialect extends SqliteDialect {
  constructor(
    private readonly settings: SqliteDialectConfig,
    private readonly waiters?: Int32Array,
  ) {
    super(settings);
  }
  override createDriver() {
    return new ImmediateSqliteDriver(this.settings, this.waiters);
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
