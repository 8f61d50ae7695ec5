import { closeSync, constants, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { ConfigError, type Config } from '../config/index.js';
import { assertPrivateDataDir } from '../config/secrets.js';

/** Another server holds the data dir's lock (as opposed to any other refusal of the data dir). */
export class DataDirBusyError extends ConfigError {}

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
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
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
