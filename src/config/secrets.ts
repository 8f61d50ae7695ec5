import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Keyring } from '../security/crypto/keyring.js';
import { ConfigError, type Config } from './index.js';

/** Writes a secret file readable by its owner only (mode 0600), never overwriting one. */
export function writeSecretFile(file: string, contents: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, contents, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}

/**
 * Refuses a data dir other users may write to (mode o+w, sticky or not, like /tmp): they could
 * put their own master.key or signing keyset there before the server generates one, or swap the
 * SQLite database, and the server would trust them.
 */
export function assertPrivateDataDir(config: Config): void {
  let mode: number;
  try {
    mode = statSync(config.dataDir).mode;
  } catch {
    return; // not made yet: it will be made 0700
  }
  if ((mode & 0o002) !== 0) {
    throw new ConfigError(
      'MOONDRAFT_DATA_DIR',
      `${config.dataDir} is writable by other users (mode ${(mode & 0o7777).toString(8)}), who could plant keys or swap the database there; use a directory of your own (chmod 700)`,
    );
  }
}

/**
 * The master keyring: MOONDRAFT_MASTER_KEY when supplied; in sandbox otherwise a key generated
 * once into `<dataDir>/master.key` (0600) and reused; in live its absence is a start-up error
 * (loadConfig already refuses it).
 */
export function resolveKeyring(config: Config): Keyring {
  if (config.masterKey) {
    try {
      return Keyring.parse(config.masterKey);
    } catch (err) {
      throw new ConfigError('MOONDRAFT_MASTER_KEY', (err as Error).message);
    }
  }
  if (config.env === 'live') throw new ConfigError('MOONDRAFT_MASTER_KEY', 'is required in live');
  assertPrivateDataDir(config);
  const file = path.join(config.dataDir, 'master.key');
  if (!existsSync(file)) writeSecretFile(file, `${Keyring.generateSpec(1)}\n`);
  try {
    return Keyring.parse(readFileSync(file, 'utf8').trim());
  } catch (err) {
    throw new ConfigError('MOONDRAFT_MASTER_KEY', `${file}: ${(err as Error).message}`);
  }
}
