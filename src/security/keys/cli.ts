import path from 'node:path';
import type { Command } from 'commander';
import { withServices } from '../../cli/index.js';
import { criticalStdout } from '../../cli/output.js';
import { ConfigError, loadConfig, type Config } from '../../config/index.js';
import { DatabaseBusyError, DataDirBusyError, lockDatabaseForServe, lockDataDirForServe, type InstanceLock } from '../../state/instance-lock.js';
import { rotateMasterKey } from './master-rotation.js';

/** `moondraft keys …` commands of the API-key feature. */
export function registerKeysCommands(program: Command): void {
  // Other features (JWT signing keys) may add to the same `keys` group.
  const keys = program.commands.find((c) => c.name() === 'keys') ?? program.command('keys').description('key management');
  keys
    .command('rotate-master')
    .description('add a new master encryption key version and re-encrypt every stored secret under it')
    .action(async () => {
      const config = loadConfig();
      // A server running on this data dir keeps its secrets under the old key version: rows
      // re-encrypted under a version it does not know would fail its signed requests (500) once its
      // cache of decrypted secrets expires. With in-process state that server holds the data dir's
      // serve lock: refuse while it does (servers sharing PostgreSQL and Redis cannot be seen from
      // here; the README says to stop them all).
      let lock: InstanceLock;
      try {
        lock = lockDataDirForServe(config);
      } catch (err) {
        // Only a held lock means a running server; a data dir refused for other reasons (writable
        // by others) is reported as it is.
        if (!(err instanceof DataDirBusyError)) throw err;
        throw new ConfigError('MOONDRAFT_DATA_DIR', `a moondraft server is running on ${config.dataDir}: stop it, run rotate-master, then start it again with the new key`);
      }
      // On PostgreSQL such a server may have a data dir of its own: it holds the schema's lock.
      let dbLock: InstanceLock | undefined;
      try {
        if (config.databaseUrl) dbLock = await lockDatabaseForServe(config);
      } catch (err) {
        lock.release();
        if (!(err instanceof DatabaseBusyError)) throw err;
        throw new ConfigError('DATABASE_URL', `a moondraft server is running on schema ${config.pgSchema} of this database: stop it, run rotate-master, then start it again with the new key`);
      }
      try {
        await rotate(config);
      } finally {
        dbLock?.release();
        lock.release();
      }
    });
}

async function rotate(config: Config): Promise<void> {
  await withServices(async (s) => {
    const keyFile = s.config.masterKey === undefined ? path.join(s.config.dataDir, 'master.key') : undefined;
    const result = await rotateMasterKey({
      store: s.store,
      keyring: s.keyring,
      keyFile,
      // With MOONDRAFT_MASTER_KEY, stdout carries only the spec, so `NEW=$(moondraft keys
      // rotate-master)` captures it; if stdout cannot take it (closed pipe, full disk) the write
      // throws and the rotation stops before any row is re-encrypted under a key nobody received.
      // With master.key the file, already replaced, is the copy: the key is not also put on a
      // terminal or into a log that captured the command's output.
      announce: (spec) => {
        if (!keyFile) criticalStdout.write(`${spec}\n`);
      },
    });
    const counts = Object.entries(result.reencrypted).map(([name, n]) => `${n} ${name}`).join(', ');
    console.error(
      keyFile
        ? `master key version ${result.version} written to ${keyFile}; re-encrypted ${counts}. Restart the server to use it.`
        : `master key version ${result.version} created; re-encrypted ${counts}. Set MOONDRAFT_MASTER_KEY to the line above on every server and restart them.`,
    );
  }, config);
}
