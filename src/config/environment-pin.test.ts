import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dropSchema, newIsolation, startTestServer } from '../../test/support/server.js';
import { PG_URL, serviceAvailable } from '../../test/support/services.js';
import { Keyring } from '../security/crypto/keyring.js';
import { ensureKeysetFile } from '../security/identity/signing-keys.js';
import { openStore } from '../store/db.js';
import { migrateTo } from '../store/migrate.js';
import { ConfigError } from './index.js';

/**
 * A store belongs to the environment of its first start. The case this is for: a live deployment
 * restarted without MOONDRAFT_ENV (an operator's restart that lost one variable, the master key
 * still set) would run as a sandbox on real accounts, its faucet minting test money into them.
 */
const postgres = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

const backends: [string, 'embedded' | 'scaleout'][] = [['SQLite', 'embedded'], ...(postgres ? [['PostgreSQL', 'scaleout'] as [string, 'scaleout']] : [])];

describe.each(backends)('the environment recorded in the store (%s)', (_name, backend) => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  /** One deployment's store and secrets; `start(env)` starts a server on them in that environment. */
  function deployment() {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'md-envpin-'));
    const isolation = newIsolation();
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    if (backend === 'scaleout') cleanups.push(() => dropSchema(isolation.pgSchema));
    const keys = path.join(dataDir, 'jwt.json');
    ensureKeysetFile(keys, Date.now());
    // The same secrets in both environments: only MOONDRAFT_ENV differs (the variable a restart lost).
    const secrets = { MOONDRAFT_MASTER_KEY: Keyring.generateSpec(1), MOONDRAFT_JWT_KEYS_FILE: keys, MOONDRAFT_TRUSTED_PROXIES: '127.0.0.1', MOONDRAFT_PUBLIC_URL: 'https://api.example.test' };
    const start = (env: 'sandbox' | 'live') =>
      startTestServer({ backend, sqliteFile: true, dataDir, isolation, env: env === 'live' ? { ...secrets, MOONDRAFT_ENV: 'live' } : secrets });
    const startAndClose = async (env: 'sandbox' | 'live') => (await start(env)).close();
    const refusal = (env: 'sandbox' | 'live') =>
      start(env).then(
        async (s) => {
          await s.close();
          return undefined;
        },
        (e: unknown) => e as Error,
      );
    const store = () => openStore({ dataDir, ...(backend === 'scaleout' ? { databaseUrl: PG_URL, pgSchema: isolation.pgSchema } : {}) });
    const recorded = async () => {
      const s = await store();
      try {
        return await s.db.selectFrom('deployment_environment').selectAll().execute();
      } finally {
        await s.close();
      }
    };
    return { start, startAndClose, refusal, store, recorded };
  }

  const expectRefused = (err: Error | undefined, env: string, other: string) => {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('MOONDRAFT_ENV');
    expect(err!.message).toBe(`MOONDRAFT_ENV: is ${env}, but this store belongs to a ${other} deployment (recorded at its first start): set MOONDRAFT_ENV=${other}, or give ${env} a database of its own`);
    expect(err!.message).not.toContain('\n');
  };

  it('a live store restarted without MOONDRAFT_ENV (a sandbox) is refused, and live starts on it again', async () => {
    const d = deployment();
    await d.startAndClose('live');
    expect(await d.recorded()).toEqual([expect.objectContaining({ id: 1, env: 'live' })]);
    expectRefused(await d.refusal('sandbox'), 'sandbox', 'live');
    // The refused start changed nothing: the record stands, and live starts.
    expect(await d.recorded()).toEqual([expect.objectContaining({ env: 'live' })]);
    await d.startAndClose('live');
  }, 60_000);

  it('a sandbox store is refused by live even when the faucet never credited anything', async () => {
    const d = deployment();
    await d.startAndClose('sandbox');
    expectRefused(await d.refusal('live'), 'live', 'sandbox');
    expect(await d.recorded()).toEqual([expect.objectContaining({ env: 'sandbox' })]);
    await d.startAndClose('sandbox');
  }, 60_000);

  it('a store from before the record takes the environment of its first start after the upgrade', async () => {
    for (const [first, other] of [['live', 'sandbox'], ['sandbox', 'live']] as const) {
      const d = deployment();
      const old = await d.store();
      try {
        await migrateTo(old, '0140_open_orders_limits');
      } finally {
        await old.close();
      }
      await d.startAndClose(first);
      expect(await d.recorded()).toEqual([expect.objectContaining({ env: first })]);
      await d.startAndClose(first);
      expectRefused(await d.refusal(other), other, first);
    }
  }, 60_000);

  it('a live refused for a sandbox faucet’s grants does not record live on the store', async () => {
    const d = deployment();
    const sandbox = await d.start('sandbox');
    const account = await sandbox.services.accounts.findOrCreate('0x' + '22'.repeat(20));
    if (!account.ok) throw new Error(account.detail);
    expect((await sandbox.services.trading.faucet.grant(account.value.id, 'USDC', '10')).ok).toBe(true);
    await sandbox.close();
    // The record of an older store is gone (the upgrade path): the grants alone refuse live.
    const s = await d.store();
    await s.db.deleteFrom('deployment_environment').execute();
    await s.close();
    const err = await d.refusal('live');
    expect((err as ConfigError).variable).toBe('MOONDRAFT_ENV');
    expect(err!.message).toMatch(/sandbox has used it/);
    expect(await d.recorded()).toEqual([]);
  }, 60_000);
});
