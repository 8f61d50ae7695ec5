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

/**
 * The same rule on PostgreSQL without Redis: there the database (its schema) is what servers
 * share, not the data dir, which each container or host may have its own of. The lock is a
 * session-level advisory lock on a connection of its own, held for the life of the process; the
 * server drops it when the process (or the connection) goes. Offline CLI commands do not take it.
 */
export async function lockDatabaseForServe(config: Config): Promise<InstanceLock> {
  // One connection, never closed while idle: a session-level lock lives as long as its session.
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 1, idleTimeoutMillis: 0, connectionTimeoutMillis: 2000 });
  // A connection dropped later must not crash the server: the lock is gone with it, no more.
  pool.on('error', () => undefined);
  const db = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) });
  let held: boolean;
  try {
    const r = await sql<{ held: boolean }>`select pg_try_advisory_lock(hashtextextended(${`moondraft serve: ${config.pgSchema}`}, 0)) as held`.execute(db);
    held = r.rows[0]?.held === true;
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw err;
  }
  if (!held) {
    await db.destroy().catch(() => undefined);
    throw new DatabaseBusyError(
      'DATABASE_URL',
      `another moondraft server with in-process state already serves schema ${config.pgSchema} of this database; several servers must share their limits and replay memory through REDIS_URL`,
    );
  }
  return {
    release() {
      void db.destroy().catch(() => undefined);
    },
  };
}
