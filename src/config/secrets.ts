import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  const file = path.join(config.dataDir, 'master.key');
  if (!existsSync(file)) writeSecretFile(file, `${Keyring.generateSpec(1)}\n`);
  try {
    return Keyring.parse(readFileSync(file, 'utf8').trim());
  } catch (err) {
    throw new ConfigError('MOONDRAFT_MASTER_KEY', `${file}: ${(err as Error).message}`);
  }
}
