import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/index.js';
import { dropSchema, newIsolation } from '../support/server.js';
import { PG_URL, serviceAvailable } from '../support/services.js';

const postgres = await serviceAvailable('postgres');

/** Runs `moondraft <args>` in this process with `env` set; its printed lines and exit code. */
async function run(args: string[], env: Record<string, string>): Promise<{ out: string; exitCode: number }> {
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
  const err = vi.spyOn(console, 'error').mockImplementation((line: string) => void lines.push(line));
  const saved = { ...process.env };
  Object.assign(process.env, { MOONDRAFT_LOG_LEVEL: 'silent', ...env });
  process.exitCode = undefined;
  try {
    await main(['node', 'moondraft', ...args]);
  } finally {
    process.env = saved;
    log.mockRestore();
    err.mockRestore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { out: lines.join('\n'), exitCode };
}

describe('verify commands against a store that is not there', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('a mistyped data dir is refused (exit 1), not made into an empty store and reported sound', async () => {
    const parent = mkdtempSync(path.join(tmpdir(), 'md-missing-'));
    dirs.push(parent);
    const dataDir = path.join(parent, 'typo');
    for (const command of [['ledger', 'verify'], ['audit', 'verify']]) {
      const { out, exitCode } = await run(command, { MOONDRAFT_DATA_DIR: dataDir });
      expect(exitCode).toBe(1);
      expect(out).toMatch(/^moondraft: invalid configuration: MOONDRAFT_DATA_DIR: no moondraft database at .*moondraft\.sqlite/);
      expect(existsSync(dataDir)).toBe(false);
    }
  }, 30_000);

  it.skipIf(!postgres)('a mistyped PostgreSQL schema is refused, and not created', async () => {
    const { pgSchema } = newIsolation();
    const dataDir = mkdtempSync(path.join(tmpdir(), 'md-missing-'));
    dirs.push(dataDir);
    try {
      for (const command of [['ledger', 'verify'], ['audit', 'verify']]) {
        const { out, exitCode } = await run(command, { MOONDRAFT_DATA_DIR: dataDir, DATABASE_URL: PG_URL, MOONDRAFT_PG_SCHEMA: pgSchema });
        expect(exitCode).toBe(1);
        expect(out).toContain(`MOONDRAFT_PG_SCHEMA: schema ${pgSchema} holds no moondraft database`);
      }
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      const made = await client.query('select 1 from pg_catalog.pg_namespace where nspname = $1', [pgSchema]);
      await client.end();
      expect(made.rowCount).toBe(0);
    } finally {
      await dropSchema(pgSchema);
    }
  }, 30_000);

  it('an existing store still verifies', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'md-missing-'));
    dirs.push(dataDir);
    expect((await run(['migrate'], { MOONDRAFT_DATA_DIR: dataDir })).exitCode).toBe(0);
    const { out, exitCode } = await run(['ledger', 'verify'], { MOONDRAFT_DATA_DIR: dataDir });
    expect(exitCode).toBe(0);
    expect(out).toMatch(/^ledger verified/);
  }, 30_000);
});
