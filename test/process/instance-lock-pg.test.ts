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
});
