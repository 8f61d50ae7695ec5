import { chmodSync, existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
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
});
