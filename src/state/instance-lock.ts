import { closeSync, constants, openSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { ConfigError, type Config } from '../config/index.js';
import { assertPrivateDataDir, makeDataDir } from '../config/secrets.js';

/** Another server holds the data dir's lock (as opposed to any other refusal of the data dir). */
export class DataDirBusyError extends ConfigError {}

/** Another server with in-process state holds the PostgreSQL schema's lock. */
export class DatabaseBusyError extends ConfigError {}

export interface InstanceLock {
  release(): void;
}

/**
 * With in-process state, a server's replay memory, rate limits, suspensions, automatic blocks
 * and halt flags live in its own memory: a second server beside it would accept a signed request
 * the first already accepted (a replayed order or withdrawal), and each would grant the full
 * limits. So one data dir serves one such process. The lock is an exclusive SQLite lock on
 * `<dataDir>/serve.lock`, held for the life of the process: the operating system drops it when the
 * process dies, so a crash never leaves a stale lock behind. Offline CLI commands do not take it.
 */
export function lockDataDirForServe(config: Config): InstanceLock {
  makeDataDir(config);
  // Judged before anything is made in it: in a data dir others may write to, serve.lock could be
  // their symlink to a file of ours. And never followed if it is a link all the same.
  assertPrivateDataDir(config);
  const file = path.join(config.dataDir, 'serve.lock');
  closeSync(openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600));
  const db = new SqliteDatabase(file, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
    throw new DataDirBusyError(
      'MOONDRAFT_DATA_DIR',
      `another moondraft server already serves ${config.dataDir} with in-process state; several servers must share their limits and replay memory through REDIS_URL (and DATABASE_URL)`,
    );
  }
  return {
    release() {
      if (db.open) db.close();
    },
  };
}

/** How often the lock's session is asked whether it still holds the lock, and how long an answer may take. */
const HEARTBEAT_MS = 5_000;
/** The step of a running deadline (see runningDeadline). */
const DEADLINE_TICK_MS = 250;

/**
 * Calls `onExpired` once `ms` have passed while this process ran. Time in which the event loop was
 * held (a long collection, a slow synchronous task, the process stopped) counts for at most two
 * ticks: an answer that arrived meanwhile waits in the socket to be read, and a plain timer would
 * fire before it is, taking a live connection for a dead one.
 */
export function runningDeadline(ms: number, onExpired: () => void, tickMs = DEADLINE_TICK_MS): { cancel(): void } {
  let counted = 0;
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    counted += Math.max(0, Math.min(now - last, 2 * tickMs));
    last = now;
    if (counted >= ms) {
      clearInterval(timer);
      onExpired();
    }
  }, tickMs);
  timer.unref();
  return { cancel: () => clearInterval(timer) };
}

/**
 * The same rule on PostgreSQL without Redis: there the database (its schema) is what servers
 * share, not the data dir, which each container or host may have its own of. The lock is a
 * session-level advisory lock on a connection of its own, held for the life of the process; the
 * server drops it when the process (or the connection) goes. Offline CLI commands do not take it.
 *
 * The lock lives exactly as long as its connection, so both ends watch it:
 * - Here: when the connection goes (PostgreSQL restarted or failed over, the session terminated, the
 *   network cut: a heartbeat asks the session every 5 s), the lock is gone and another server could
 *   take it: `onLost` is called, once, and `serve` stops (exit 1) rather than run beside it.
 * - PostgreSQL: the session sets its own TCP keepalives (10 s idle, then 3 probes 5 s apart), so a
 *   dead host's lock is released within about half a minute, not after the system default of two
 *   hours; and no idle-session timeout a database administrator set ends it while the server runs.
 */
export async function lockDatabaseForServe(config: Config, onLost: (reason: string) => void = () => undefined): Promise<InstanceLock> {
  // One connection, never closed while idle: a session-level lock lives as long as its session.
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: 1,
    idleTimeoutMillis: 0,
    connectionTimeoutMillis: 2000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // Names the session in pg_stat_activity (an administrator looking for what holds the lock).
    application_name: `moondraft serve lock ${config.pgSchema}`.slice(0, 63),
  });
  const db = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) });
  let releasing = false;
  let lost = false;
  let heartbeat: NodeJS.Timeout | undefined;
  let client: pg.PoolClient | undefined;
  const loseLock = (reason: string) => {
    if (releasing || lost) return;
    lost = true;
    clearInterval(heartbeat);
    onLost(reason);
    // The connection is of no more use (and may be half dead, a question on it unanswered): end
    // it, so that nothing of it is left to fail later.
    void client?.end().catch(() => undefined);
    void db.destroy().catch(() => undefined);
  };
  // A connection dropped later must not crash the process with an unhandled error: it is reported
  // as the lost lock it is (the pool then removes the client, which is reported below too, once).
  pool.on('error', (err) => loseLock(err.message));
  pool.on('remove', () => loseLock('the connection holding the lock closed'));
  // The pool only listens for errors of an idle connection: one that fails while a query holds it
  // (the heartbeat's, timed out on a silent network) would be an uncaught exception. That query's
  // own failure reports the loss.
  pool.on('connect', (c) => {
    client = c;
    c.on('error', () => undefined);
  });
  let held: boolean;
  try {
    held = await db.connection().execute(async (conn) => {
      // Settings of this session only. idle_session_timeout exists from PostgreSQL 14 on.
      await sql`select set_config('tcp_keepalives_idle', '10', false), set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false)`.execute(conn);
      await sql`select set_config('idle_session_timeout', '0', false) where current_setting('server_version_num')::int >= 140000`.execute(conn);
      const r = await sql<{ held: boolean }>`select pg_try_advisory_lock(hashtextextended(${`moondraft serve: ${config.pgSchema}`}, 0)) as held`.execute(conn);
      return r.rows[0]?.held === true;
    });
  } catch (err) {
    releasing = true;
    await db.destroy().catch(() => undefined);
    throw err;
  }
  if (!held) {
    releasing = true;
    await db.destroy().catch(() => undefined);
    throw new DatabaseBusyError(
      'DATABASE_URL',
      `another moondraft server with in-process state already serves schema ${config.pgSchema} of this database; several servers must share their limits and replay memory through REDIS_URL`,
    );
  }
  // Keepalives alone do not tell this side in time: Node sets only the first probe's delay, and the
  // system then waits minutes (Linux: 9 probes 75 s apart) before it calls a silent connection dead
  // (a primary that died, a dropped NAT entry), while PostgreSQL ends its side within half a minute,
  // and a failover loses the lock at once (advisory locks are not replicated). So this session is
  // asked every few seconds whether it still holds the lock: no answer in time, an error, or not
  // held, and the lock is lost.
  let asking = false;
  heartbeat = setInterval(() => {
    // One question at a time: a slow answer is judged by its own deadline, not queued behind.
    if (asking) return;
    asking = true;
    // Unanswered for HEARTBEAT_MS of this process's running time: the connection is taken for dead.
    const deadline = runningDeadline(HEARTBEAT_MS, () => loseLock(`the connection holding the lock did not answer within ${HEARTBEAT_MS} ms`));
    sql<{ n: number }>`select count(*)::int as n from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted`
      .execute(db)
      .then(
        (r) => {
          if (!(Number(r.rows[0]?.n) > 0)) loseLock('the session no longer holds the lock');
        },
        (err: Error) => loseLock(`the connection holding the lock failed: ${err.message}`),
      )
      .finally(() => {
        deadline.cancel();
        asking = false;
      });
  }, HEARTBEAT_MS);
  heartbeat.unref();
  return {
    release() {
      releasing = true;
      clearInterval(heartbeat);
      void db.destroy().catch(() => undefined);
    },
  };
}
