import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { criticalStdout } from '../../src/cli/output.js';
import { buildProgram } from '../../src/cli/index.js';
import { loadConfig } from '../../src/config/index.js';
import { lockDatabaseForServe, lockDataDirForServe } from '../../src/state/instance-lock.js';
import { ManualClock } from '../../src/lib/clock.js';
import { Keyring } from '../../src/security/crypto/keyring.js';
import pg from 'pg';
import { PG_URL, serviceAvailable } from '../support/services.js';
import { code, createKey, credentialOf, session, signed, startKeysServer, type CreatedKey } from './support.js';

const pgUp = await serviceAvailable('postgres');

const clock = new ManualClock(Date.UTC(2026, 7, 1));
const dirs: string[] = [];
const savedEnv = { ...process.env };
afterEach(() => {
  process.env = { ...savedEnv };
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A sandbox data dir holding one hmac key with a current and a grace-period secret. */
async function seed(env: Record<string, string> = {}): Promise<{ dataDir: string; key: CreatedKey; oldSecret: string }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-keys-rotate-'));
  dirs.push(dataDir);
  const ks = await startKeysServer({ clock, dataDir, sqliteFile: true, env });
  try {
    const owner = await session(ks);
    const key = await createKey(ks, owner.headers, { label: 'rotate', scopes: ['orders:read'] });
    const regen = await ks.app.inject({ method: 'POST', url: `/api/v1/keys/${key.id}/regenerate`, headers: owner.headers, payload: { gracePeriodSeconds: 3600 } });
    expect((await signed(ks, credentialOf(key), { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    return { dataDir, key: { ...key, apiSecret: regen.json().apiSecret }, oldSecret: key.apiSecret! };
  } finally {
    await ks.close();
  }
}

async function runCli(env: Record<string, string>): Promise<{ stdout: string[]; stderr: string[] }> {
  Object.assign(process.env, { MOONDRAFT_LOG_LEVEL: 'silent', ...env });
  const stdout: string[] = [];
  const stderr: string[] = [];
  vi.spyOn(criticalStdout, 'write').mockImplementation((text: string) => void stdout.push(text.replace(/\n$/, '')));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void stderr.push(a.join(' ')));
  await buildProgram().parseAsync(['node', 'moondraft', 'keys', 'rotate-master']);
  vi.restoreAllMocks();
  return { stdout, stderr };
}

async function secretsIn(dataDir: string, env: Record<string, string> = {}) {
  const ks = await startKeysServer({ clock, dataDir, sqliteFile: true, env });
  // A restarted server refuses requests signed before it started (its replay memory is new):
  // the requests below are signed a little later, as a client's would be.
  clock.advance(3_000);
  const rows = await ks.server.services.store.db.selectFrom('api_keys').select(['id', 'secret_enc', 'prev_secret_enc']).execute();
  return { ks, rows };
}

describe('moondraft keys rotate-master', () => {
  it('refuses while a server holds the data dir, and changes nothing', async () => {
    const { dataDir } = await seed();
    const spec = readFileSync(path.join(dataDir, 'master.key'), 'utf8');
    const serving = lockDataDirForServe(loadConfig({ MOONDRAFT_DATA_DIR: dataDir }));
    try {
      await expect(runCli({ MOONDRAFT_DATA_DIR: dataDir })).rejects.toThrow(/a moondraft server is running on/);
      expect(readFileSync(path.join(dataDir, 'master.key'), 'utf8')).toBe(spec);
    } finally {
      vi.restoreAllMocks();
      serving.release();
    }
    // Once the server has stopped, the rotation runs.
    const { stderr } = await runCli({ MOONDRAFT_DATA_DIR: dataDir });
    expect(stderr.join('\n')).toContain('version 2');
  });

  it.skipIf(!pgUp)('refuses while a server with in-process state holds the PostgreSQL schema, whatever its data dir', async () => {
    // That server keeps its secrets under the old key version: rows re-encrypted under it would
    // fail its signed requests once its cache of decrypted secrets expires. On PostgreSQL it runs
    // with a data dir of its own (another container), so the data dir's lock alone cannot tell.
    const schema = `md_rotate_lock_${process.pid}`;
    const spec = Keyring.generateSpec(1);
    const env = { DATABASE_URL: PG_URL, MOONDRAFT_PG_SCHEMA: schema, MOONDRAFT_MASTER_KEY: spec };
    const mine = mkdtempSync(path.join(tmpdir(), 'moondraft-keys-rotate-'));
    const theirs = mkdtempSync(path.join(tmpdir(), 'moondraft-keys-rotate-'));
    dirs.push(mine, theirs);
    const serving = await lockDatabaseForServe(loadConfig({ ...env, MOONDRAFT_DATA_DIR: theirs }));
    try {
      await expect(runCli({ ...env, MOONDRAFT_DATA_DIR: mine })).rejects.toThrow(/a moondraft server is running on schema/);
    } finally {
      vi.restoreAllMocks();
      serving.release();
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    }
  });

  it('a data dir others may write to is reported as such, not as a running server', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-keys-rotate-'));
    dirs.push(dataDir);
    chmodSync(dataDir, 0o777);
    await expect(runCli({ MOONDRAFT_DATA_DIR: dataDir })).rejects.toThrow(/^MOONDRAFT_DATA_DIR: .*writable by other users/);
  });

  it('sandbox: writes the new spec to <dataDir>/master.key (and nowhere else: not to stdout), re-encrypts every secret under it', async () => {
    const { dataDir, key, oldSecret } = await seed();
    const before = Keyring.parse(readFileSync(path.join(dataDir, 'master.key'), 'utf8').trim());
    const { stdout, stderr } = await runCli({ MOONDRAFT_DATA_DIR: dataDir });

    const file = path.join(dataDir, 'master.key');
    const spec = readFileSync(file, 'utf8').trim();
    expect(stdout).toEqual([]);
    expect(stderr.join('\n')).not.toContain(spec.split(',').at(-1)!.slice(2));
    expect(stderr.join('\n')).toContain(`version 2 written to ${file}`);
    expect(stderr.join('\n')).toContain('2 api key secrets'); // current and grace-period secret
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const next = Keyring.parse(spec);
    expect(next.activeVersion).toBe(2);

    const { ks, rows } = await secretsIn(dataDir);
    try {
      const row = rows.find((r) => r.id === key.id)!;
      expect(Keyring.versionOf(row.secret_enc!)).toBe(2);
      expect(Keyring.versionOf(row.prev_secret_enc!)).toBe(2);
      // The old keyring alone can no longer read them: they really were re-encrypted.
      expect(() => before.decrypt(row.secret_enc!, key.id)).toThrow();
      // Both the new secret and the grace-period one still verify on a restarted server.
      expect((await signed(ks, { apiKey: key.apiKey, secret: key.apiSecret! }, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
      expect((await signed(ks, { apiKey: key.apiKey, secret: oldSecret }, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    } finally {
      await ks.close();
    }
  });

  it('with MOONDRAFT_MASTER_KEY: prints the new spec for the operator and writes no file', async () => {
    const original = Keyring.generateSpec(1);
    const { dataDir, key } = await seed({ MOONDRAFT_MASTER_KEY: original });
    const { stdout, stderr } = await runCli({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_MASTER_KEY: original });
    expect(stdout).toHaveLength(1);
    const spec = stdout[0]!;
    expect(spec.startsWith(`${original},2:`)).toBe(true);
    expect(stderr.join('\n')).toContain('MOONDRAFT_MASTER_KEY');
    expect(() => statSync(path.join(dataDir, 'master.key'))).toThrow();

    const { ks, rows } = await secretsIn(dataDir, { MOONDRAFT_MASTER_KEY: spec });
    try {
      expect(rows.every((r) => r.secret_enc === null || Keyring.versionOf(r.secret_enc) === 2)).toBe(true);
      expect((await signed(ks, { apiKey: key.apiKey, secret: key.apiSecret! }, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    } finally {
      await ks.close();
    }
    // A server still on the old spec cannot read the re-encrypted secret (restart it with the new one).
    const stale = await startKeysServer({ clock, dataDir, sqliteFile: true, env: { MOONDRAFT_MASTER_KEY: original } });
    try {
      const res = await signed(stale, { apiKey: key.apiKey, secret: key.apiSecret! }, { url: '/api/v1/trading/probe' });
      expect(res.statusCode).toBe(500);
      expect(code(res)).toBe('internal_error');
      expect(res.body).not.toContain('master key');
    } finally {
      await stale.close();
    }
  });

  it('refuses to run again from a keyring that lacks the version a previous rotation left the secrets under', async () => {
    // The operator ran rotate-master, lost (or never installed) the printed spec, and runs it
    // again from the old MOONDRAFT_MASTER_KEY: the secrets are under the first run's version 2,
    // which the second run's version 2 is not. Skipping them as "already current" would report
    // success and leave every secret under a key nobody holds.
    const original = Keyring.generateSpec(1);
    const { dataDir, key } = await seed({ MOONDRAFT_MASTER_KEY: original });
    await runCli({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_MASTER_KEY: original });
    const stdout: string[] = [];
    vi.spyOn(criticalStdout, 'write').mockImplementation((text: string) => void stdout.push(text));
    vi.spyOn(console, 'error').mockImplementation(() => {});
    await expect(buildProgram().parseAsync(['node', 'moondraft', 'keys', 'rotate-master'])).rejects.toThrow(/master key version 2.*not in MOONDRAFT_MASTER_KEY|previous rotate-master/);
    vi.restoreAllMocks();
    // Nothing was announced or rewritten: no spec that cannot read the secrets was handed out.
    expect(stdout).toEqual([]);
    const { ks, rows } = await secretsIn(dataDir, { MOONDRAFT_MASTER_KEY: original });
    await ks.close();
    const row = rows.find((r) => r.id === key.id)!;
    expect(Keyring.versionOf(row.secret_enc!)).toBe(2);
  });

  it('stops before re-encrypting anything when the new spec cannot be written to stdout', async () => {
    // With MOONDRAFT_MASTER_KEY the printed spec is the only copy of the new key: stdout closed or on
    // a full disk must stop the rotation, not re-encrypt every secret under a key nobody received.
    const original = Keyring.generateSpec(1);
    const { dataDir, key } = await seed({ MOONDRAFT_MASTER_KEY: original });
    Object.assign(process.env, { MOONDRAFT_LOG_LEVEL: 'silent', MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_MASTER_KEY: original });
    vi.spyOn(criticalStdout, 'write').mockImplementation(() => {
      throw Object.assign(new Error('EPIPE: broken pipe, write'), { code: 'EPIPE' });
    });
    vi.spyOn(console, 'error').mockImplementation(() => {});
    await expect(buildProgram().parseAsync(['node', 'moondraft', 'keys', 'rotate-master'])).rejects.toThrow(/EPIPE/);
    vi.restoreAllMocks();
    const { ks, rows } = await secretsIn(dataDir, { MOONDRAFT_MASTER_KEY: original });
    try {
      const row = rows.find((r) => r.id === key.id)!;
      expect(Keyring.versionOf(row.secret_enc!)).toBe(1);
      expect((await signed(ks, { apiKey: key.apiKey, secret: key.apiSecret! }, { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
    } finally {
      await ks.close();
    }
  });
});
