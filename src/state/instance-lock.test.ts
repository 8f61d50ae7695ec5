import { chmodSync, existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config/index.js';
import { createServices } from '../services.js';
import { lockDataDirForServe } from './instance-lock.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'md-lock-'));

describe('lockDataDirForServe', () => {
  it('refuses a data dir others may write to before creating anything in it', () => {
    // Whoever may write there could have put a symlink named serve.lock to a file of ours.
    const dataDir = tmp();
    chmodSync(dataDir, 0o777);
    expect(() => lockDataDirForServe(loadConfig({ MOONDRAFT_DATA_DIR: dataDir }))).toThrow(/^MOONDRAFT_DATA_DIR: .*writable by other users/);
    expect(existsSync(path.join(dataDir, 'serve.lock'))).toBe(false);
  });

  it('holds the data dir until released, with a lock file of the owner only', () => {
    const config = loadConfig({ MOONDRAFT_DATA_DIR: path.join(tmp(), 'data') });
    const lock = lockDataDirForServe(config);
    expect((statSync(path.join(config.dataDir, 'serve.lock')).mode & 0o777).toString(8)).toBe('600');
    expect(() => lockDataDirForServe(config)).toThrow(/^MOONDRAFT_DATA_DIR: another moondraft server/);
    lock.release();
    lockDataDirForServe(config).release();
  });

  it('a data dir that cannot be a directory (a file is there, or above it) is refused naming MOONDRAFT_DATA_DIR', async () => {
    // serve and the one-off commands said "moondraft: EEXIST: file already exists, mkdir …",
    // naming no variable to fix.
    const file = path.join(tmp(), 'data');
    writeFileSync(file, '');
    for (const dataDir of [file, path.join(file, 'below')]) {
      const config = loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' });
      expect(() => lockDataDirForServe(config)).toThrow(/^MOONDRAFT_DATA_DIR: .*not a directory/);
      const err = await createServices(config, { processMetrics: false }).then(
        async (s) => {
          await s.close();
          return undefined;
        },
        (e: unknown) => e as Error,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect(err!.message).toMatch(/^MOONDRAFT_DATA_DIR: .*not a directory/);
    }
  });
});
