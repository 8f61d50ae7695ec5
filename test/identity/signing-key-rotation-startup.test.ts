import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { rotateKeysetFile } from '../../src/security/identity/signing-keys.js';
import { createServices, type Services } from '../../src/services.js';

/** What runs in the middle of start-up (after the keyset is loaded, before start-up ends): set per test. */
const duringStartup = vi.hoisted(() => ({ hook: undefined as undefined | (() => Promise<void>) }));

vi.mock('../../src/store/migrate.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/store/migrate.js')>();
  return {
    ...original,
    migrateToLatest: async (...args: Parameters<typeof original.migrateToLatest>) => {
      const applied = await original.migrateToLatest(...args);
      await duringStartup.hook?.();
      return applied;
    },
  };
});

const quiet = new Writable({ write: (_c, _e, cb) => cb() });

async function recordedRotations(services: Services): Promise<string[]> {
  await services.audit.flush();
  const kids: string[] = [];
  for await (const view of services.audit.export({ type: 'admin.signing_keys.rotated' })) kids.push(String(view.details?.kid));
  return kids;
}

describe('a signing-key rotation made while a server starts', () => {
  let dataDir: string | undefined;
  let services: Services | undefined;
  afterEach(async () => {
    await services?.close();
    vi.useRealTimers();
    duringStartup.hook = undefined;
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('is recorded, even when a keyset reload tick falls inside a slow start-up (a long migration)', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-rotation-startup-'));
    const config = loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'warn', PORT: '0' });
    let fresh = '';
    duringStartup.hook = async () => {
      // The operator rotates while this server is still migrating, and the 5 s reload tick comes.
      fresh = rotateKeysetFile(config.jwtKeysFile, Date.now(), 3_600_000).kid;
      vi.advanceTimersByTime(5_000);
      await new Promise((r) => setTimeout(r, 200)); // the reload reads and parses the file
    };
    services = await createServices(config, { sqliteFile: ':memory:', processMetrics: false, logDestination: quiet });
    vi.advanceTimersByTime(5_000); // the next reload tick, once running
    await vi.waitFor(async () => expect(await recordedRotations(services!)).toEqual([fresh]), { timeout: 3000, interval: 50 });
  });
});
