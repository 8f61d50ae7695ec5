import { existsSync } from 'node:fs';
import path from 'node:path';
import { Argument, Command } from 'commander';
import pg from 'pg';
import { createMoondraft, type Moondraft } from '../app.js';
import { ConfigError, loadConfig, type Config } from '../config/index.js';
import { listen } from '../http/listen.js';
import { bufferedStdout, stderrLog } from '../observability/logger.js';
import { isRole, ROLES } from '../security/rbac/roles.js';
import { createServices, type Services } from '../services.js';
import { lockDatabaseForServe, lockDataDirForServe, type InstanceLock } from '../state/instance-lock.js';
import { writeDevCert } from './dev-cert.js';
import { registerCommands } from './commands.js';

/** Runs `fn` with the server's services (store migrated, secrets resolved), then closes them. */
export async function withServices<T>(fn: (services: Services) => Promise<T>, config: Config = loadConfig()): Promise<T> {
  // A one-off command runs its few order commands (a delisting, say) in its own thread: starting
  // the order thread would only slow it down.
  // Its log goes to stderr: stdout is the command's answer, which scripts parse or capture.
  const services = await createServices({ ...config, logLevel: 'warn', trading: { ...config.trading, orderThread: false } }, { processMetrics: false, logDestination: stderrLog() });
  try {
    return await fn(services);
  } finally {
    await services.close();
  }
}

/**
 * Refuses a store that is not there (a mistyped MOONDRAFT_DATA_DIR, DATABASE_URL or
 * MOONDRAFT_PG_SCHEMA), for commands that inspect one: opening it would make an empty store (and
 * new secrets beside it), which every check then passes.
 */
async function assertStoreExists(config: Config): Promise<void> {
  if (!config.databaseUrl) {
    const file = path.join(config.dataDir, 'moondraft.sqlite');
    if (!existsSync(file)) throw new ConfigError('MOONDRAFT_DATA_DIR', `no moondraft database at ${file} (\`moondraft migrate\` or serve makes one)`);
    return;
  }
  const client = new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: 2000 });
  await client.connect();
  try {
    const found = await client.query(
      "select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = 'kysely_migration'",
      [config.pgSchema],
    );
    if (found.rowCount === 0) throw new ConfigError('MOONDRAFT_PG_SCHEMA', `schema ${config.pgSchema} holds no moondraft database (\`moondraft migrate\` or serve makes one)`);
  } finally {
    await client.end();
  }
}

/** withServices for commands that only inspect the store: one that is not there is refused. */
export async function withExistingServices<T>(fn: (services: Services) => Promise<T>, config: Config = loadConfig()): Promise<T> {
  await assertStoreExists(config);
  return withServices(fn, config);
}

async function serve(): Promise<void> {
  const config = loadConfig();
  // In-process state is this process's own: one such server per data dir, and per PostgreSQL
  // schema (see instance-lock.ts).
  const locks: InstanceLock[] = [];
  const releaseLocks = () => locks.forEach((l) => l.release());
  // The schema's lock lost (its connection gone): another server may take it now, so this one stops
  // (exit 1) rather than run beside it with a replay memory of its own; a supervisor restarts it,
  // and it takes the lock again or refuses to start. Lost during start-up, it stops once listening.
  let lockLost: string | undefined;
  let onLockLost = (reason: string) => {
    lockLost = reason;
  };
  const logOutput = bufferedStdout();
  let moondraft: Moondraft;
  let server: Awaited<ReturnType<typeof listen>>;
  try {
    if (!config.redisUrl) {
      locks.push(lockDataDirForServe(config));
      if (config.databaseUrl) locks.push(await lockDatabaseForServe(config, (reason) => onLockLost(reason)));
    }
    moondraft = await createMoondraft(config, { logDestination: logOutput });
    try {
      server = await listen(moondraft);
    } catch (err) {
      await moondraft.close();
      throw err;
    }
  } catch (err) {
    releaseLocks();
    throw err;
  }
  let stopping = false;
  let exitCode = 0;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (exitCode === 0) moondraft.services.log.info({ signal }, 'shutting down: finishing in-flight requests');
    // A drain that hangs (the database not answering the last writes, say) is cut short: what the
    // services had not yet written is lost, so say so (the log is written out at exit).
    const force = setTimeout(() => {
      moondraft.services.log.fatal(
        { signal, afterMs: 15_000 },
        'shutdown did not finish within 15 s: exiting now; audit events still buffered are lost, and orders still being processed have an unknown outcome (retry them with their clientOrderId)',
      );
      process.exit(1);
    }, 15_000);
    force.unref();
    server.stop().then(
      () => {
        releaseLocks();
        if (signal === 'SIGHUP') {
          // Everything is written; the process now ends as the hangup asked, by that signal with
          // its default action. Not process.exit: with the terminal gone, Node 20 aborts at exit
          // (SIGABRT, a core dump where they are enabled) failing to restore the terminal's
          // settings. A hangup's default action runs no exit handlers, so the log is written out here.
          logOutput.flushSync();
          process.removeAllListeners('SIGHUP');
          process.kill(process.pid, 'SIGHUP');
          return;
        }
        moondraft.services.log.flush();
        process.exit(exitCode);
      },
      (err) => {
        moondraft.services.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // Before the listening line: whoever waits for it (a supervisor, a test) may signal at once, and a
  // signal arriving before its handler is installed kills the process with no graceful shutdown.
  // `on`, not `once`: a repeated signal must reach the guard in stop(). Left to Node's default
  // action it would kill the server mid-drain, and Ctrl-C on `npm start` sends SIGINT twice (the
  // terminal's to the whole foreground group, and npm forwards its own). The 15 s timer still ends
  // a drain that hangs.
  // SIGHUP is what closing the terminal of `npm start` sends: the same drain, not Node's default
  // of ending at once (which lost the buffered audit events). It does not reload anything.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => stop('SIGHUP'));
  moondraft.services.log.info({ url: server.url, env: config.env, store: moondraft.services.store.dialect, state: moondraft.services.state.kind }, 'moondraft listening');
  onLockLost = (reason) => {
    if (stopping) return;
    exitCode = 1;
    moondraft.services.log.fatal(
      { reason, schema: config.pgSchema },
      'lost the PostgreSQL schema lock: another server with in-process state could start beside this one, so this one stops (finishing in-flight requests); restart it',
    );
    stop('schema lock lost');
  };
  if (lockLost !== undefined) onLockLost(lockLost);
  moondraft.services.log.flush();
}

export function buildProgram(): Command {
  const program = new Command('moondraft')
    .description('Moondraft: a self-hostable trading API server. Configuration comes from environment variables (see README).')
    .showHelpAfterError();

  program.command('serve').description('run the API server (what `npm start` does)').action(serve);

  program
    .command('migrate')
    .description('bring the database schema to the latest version (serve does this too)')
    .action(async () => {
      await withServices(async (s) => {
        console.log(`schema up to date on ${s.store.dialect}`);
      });
    });

  program
    .command('dev-cert')
    .description('write a self-signed TLS certificate and key for local HTTPS trials (not for production)')
    .option('--dir <dir>', 'where to write dev-cert.pem and dev-key.pem (default: the data dir)')
    .option('--host <host...>', 'host names and addresses the certificate covers', ['localhost', '127.0.0.1', '::1'])
    .option('--force', 'replace existing files', false)
    .action(async (opts: { dir?: string; host: string[]; force: boolean }) => {
      const dir = opts.dir ?? loadConfig().dataDir;
      const { certFile, keyFile } = await writeDevCert(dir, opts.host, opts.force);
      console.log(`wrote ${certFile} and ${keyFile}\nserve HTTPS with: MOONDRAFT_TLS_CERT=${certFile} MOONDRAFT_TLS_KEY=${keyFile} npm start`);
    });

  program
    .command('role')
    .description('set the role of the account of a wallet (creating the account if needed)')
    .argument('<address>', 'wallet address (0x… or Solana base58)')
    .addArgument(new Argument('<role>', `one of ${ROLES.join(', ')}`).choices(ROLES))
    .action(async (address: string, role: string) => {
      if (!isRole(role)) throw new Error(`role must be one of ${ROLES.join(', ')}`);
      await withServices(async (s) => {
        const r = await s.accounts.setRole(address, role, 'cli');
        if (!r.ok) throw new Error(r.detail);
        console.log(`${r.value.wallet} is now ${r.value.role}`);
      });
    });

  registerCommands(program);
  return program;
}

/** Entry point of the `moondraft` binary; prints one clear line and exits 1 on bad configuration. */
export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`moondraft: invalid configuration: ${err.message}`);
    } else {
      console.error(`moondraft: ${(err as Error).message}`);
    }
    process.exitCode = 1;
  }
}
