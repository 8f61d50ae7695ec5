import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { runCli, startServerProcess } from '../support/process.js';
import { PG_URL, serviceAvailable } from '../support/services.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'md-lock-'));
const pgUp = await serviceAvailable('postgres');

describe('one server with in-process state per PostgreSQL schema', () => {
  it.skipIf(!pgUp)('a second server with in-process state on the same PostgreSQL schema refuses to start, whatever its data dir', async () => {
    // Each would keep its own replay memory and limits, as two on one data dir would: a signed
    // order or withdrawal the first accepted would be accepted again by the second. On PostgreSQL
    // the database is what they share, not the data dir (two containers each have their own).
    const schema = `md_cli_lock_${process.pid}`;
    const env = { DATABASE_URL: PG_URL, MOONDRAFT_PG_SCHEMA: schema };
    const first = await startServerProcess({ ...env, MOONDRAFT_DATA_DIR: tmp() });
    try {
      const second = await startServerProcess({ ...env, MOONDRAFT_DATA_DIR: tmp() }).then(
        async (s) => {
          await s.stop();
          return new Error('the second server started');
        },
        (e: Error) => e,
      );
      expect(second.message).toMatch(/exited with 1 before listening/);
      expect(second.message).toContain('moondraft: invalid configuration: DATABASE_URL: another moondraft server');
      // The offline commands still run beside it.
      expect((await runCli(['migrate'], { ...env, MOONDRAFT_DATA_DIR: tmp() })).code).toBe(0);
    } finally {
      expect(await first.stop()).toBe(0);
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    }
  }, 90_000);
  it.skipIf(!pgUp)('a server whose schema lock is lost (its session ended) stops with exit 1 instead of running unlocked; a restart takes the lock again', async () => {
    // A PostgreSQL restart or failover ends the lock's session: another server could then take the
    // lock and run beside this one, each with its own replay memory.
    const schema = `md_cli_lost_${process.pid}`;
    const env = { DATABASE_URL: PG_URL, MOONDRAFT_PG_SCHEMA: schema };
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const first = await startServerProcess({ ...env, MOONDRAFT_DATA_DIR: tmp() });
    let restarted: Awaited<ReturnType<typeof startServerProcess>> | undefined;
    try {
      const exited = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)));
      const ended = await admin.query(`select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = $1`, [`moondraft serve lock ${schema}`]);
      expect(ended.rows).toEqual([{ ok: true }]);
      expect(await exited).toBe(1);
      expect(first.output()).toContain('lost the PostgreSQL schema lock');
      // The lock is free: a new server takes it, and holds it (a second one is refused again).
      restarted = await startServerProcess({ ...env, MOONDRAFT_DATA_DIR: tmp() });
      const locks = await admin.query(`select count(*)::int as n from pg_stat_activity where application_name = $1`, [`moondraft serve lock ${schema}`]);
      expect(locks.rows).toEqual([{ n: 1 }]);
      await expect(startServerProcess({ ...env, MOONDRAFT_DATA_DIR: tmp() })).rejects.toThrow(/another moondraft server/);
    } finally {
      await first.stop();
      if (restarted) expect(await restarted.stop()).toBe(0);
      await admin.query(`drop schema if exists ${schema} cascade`);
      await admin.end();
    }
  }, 90_000);
});
