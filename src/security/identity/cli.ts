import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config/index.js';
import { rotateKeysetFile } from './signing-keys.js';

/** Access tokens live 1 h and verifiers allow at most 30 s of clock tolerance. */
const LONGEST_TOKEN_LIFETIME_MS = (3600 + 30) * 1000;

/** The `keys` command group, shared with other features that manage keys. */
export function keysCommand(program: Command): Command {
  return program.commands.find((c) => c.name() === 'keys') ?? program.command('keys').description('manage keys (JWT signing keys and others)');
}

/**
 * `moondraft keys rotate-signing [--file FILE]`: adds a new RS256 key that signs new tokens at
 * once; the previous key keeps verifying (and stays in JWKS) until every token it signed has
 * expired. Running servers re-read the keyset file within 5 seconds. With --file it needs no other
 * configuration, so it can create the keyset a live deployment requires before its first start.
 */
export function registerIdentityCommands(program: Command): void {
  keysCommand(program)
    .command('rotate-signing')
    .description('add a new JWT signing key; older keys keep verifying until their tokens expire, then leave JWKS')
    .option('--file <file>', 'the keyset file (default: MOONDRAFT_JWT_KEYS_FILE, or <data dir>/jwt-signing-keys.json in sandbox)')
    .action((opts: { file?: string }) => {
      let file: string;
      let lifetimeMs = LONGEST_TOKEN_LIFETIME_MS;
      if (opts.file) {
        file = path.resolve(opts.file);
      } else {
        const config = loadConfig();
        file = config.jwtKeysFile;
        lifetimeMs = (config.jwt.accessTtlSec + config.jwt.clockToleranceSec) * 1000;
      }
      const fresh = rotateKeysetFile(file, Date.now(), lifetimeMs);
      console.log(`new signing key ${fresh.kid} written to ${file}; running servers use it within 5 seconds`);
    });
}
