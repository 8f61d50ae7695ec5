import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { fieldAad } from '../audit/seal.js';
import { Keyring } from '../security/crypto/keyring.js';
import type { Store } from '../store/db.js';
import { ConfigError, type Config } from './index.js';
import { privateFileProblem } from './private-file.js';

/** Writes a secret file readable by its owner only (mode 0600), never overwriting one. */
export function writeSecretFile(file: string, contents: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, contents, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}

/**
 * Makes the data dir (0700) if it is not there. A path that cannot be a directory (a file there or
 * above it, no permission) is a bad MOONDRAFT_DATA_DIR, reported naming it rather than as mkdir's
 * bare EEXIST or ENOTDIR.
 */
export function makeDataDir(config: Config): void {
  try {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(
      'MOONDRAFT_DATA_DIR',
      code === 'EEXIST' || code === 'ENOTDIR' ? `${config.dataDir} is not a directory (a file is in its place or above it)` : `cannot make ${config.dataDir} (${code})`,
    );
  }
}

/** Whether other users may write to a directory with this mode (group or other write). */
const othersMayWrite = (mode: number) => (mode & 0o022) !== 0;

/**
 * Refuses a data dir other users may write to (group or other write, sticky or not, like /tmp):
 * they could put their own master.key or signing keyset there before the server generates one,
 * or swap the SQLite database, and the server would trust them. Every directory above it must not
 * be writable by everyone either, unless sticky (like /tmp): whoever may write there can rename the
 * data dir away and put one of their own in its place. A symlinked data dir is judged where it leads, and
 * the directories holding the link are judged too.
 */
export function assertPrivateDataDir(config: Config): void {
  const refuse = (dir: string, mode: number) =>
    new ConfigError(
      'MOONDRAFT_DATA_DIR',
      `${dir} is writable by other users (mode ${(mode & 0o7777).toString(8)}), who could plant keys or swap the database there; use a directory of your own (chmod 700)`,
    );
  let real: string;
  let mode: number;
  try {
    real = realpathSync(config.dataDir);
    mode = statSync(real).mode;
  } catch {
    return; // not made yet: it will be made 0700 (its parents are judged once it exists)
  }
  if (othersMayWrite(mode)) throw refuse(config.dataDir, mode);
  const ancestors = new Set<string>();
  for (const start of [real, path.resolve(config.dataDir)]) {
    for (let dir = path.dirname(start); ; dir = path.dirname(dir)) {
      ancestors.add(dir);
      if (path.dirname(dir) === dir) break;
    }
  }
  // Above the data dir only writing by everyone counts: a checkout made under umask 002 (user
  // private groups, where the group is the user alone) is group-writable, and refusing it would
  // stop `npm start` there from its second run on.
  for (const dir of ancestors) {
    const m = statSync(dir).mode;
    if ((m & 0o002) !== 0 && (m & 0o1000) === 0) throw refuse(dir, m);
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
  const open = privateFileProblem(file);
  if (open) throw new ConfigError('MOONDRAFT_MASTER_KEY', open);
  try {
    return Keyring.parse(readFileSync(file, 'utf8').trim());
  } catch (err) {
    throw new ConfigError('MOONDRAFT_MASTER_KEY', `${file}: ${(err as Error).message}`);
  }
}

/** How many of the newest audit records assertKeyringOpensStore tries. */
const KEY_CHECK_RECORDS = 20;

/**
 * Refuses a keyring that is not the one the store's data was sealed with (another deployment's
 * MOONDRAFT_MASTER_KEY, a mistyped one, a master.key from elsewhere): one of the same version
 * number parses, and everything written under it (audit records, API-key secrets) could never be
 * read with the real key. Judged on the newest audit records: it holds none of their key versions,
 * or none of those under a version it holds opens. Several, so that one damaged record (which
 * `audit verify` must be able to report) does not stop start-up.
 */
export async function assertKeyringOpensStore(store: Store, keyring: Keyring): Promise<void> {
  const rows = await store.db.selectFrom('audit_events').select(['id', 'details_enc']).orderBy('seq', 'desc').limit(KEY_CHECK_RECORDS).execute();
  const sealed = rows.filter((r) => Keyring.versionOf(r.details_enc) !== undefined);
  if (sealed.length === 0) return;
  const held = sealed.filter((r) => keyring.has(Keyring.versionOf(r.details_enc)!));
  // None of them under a version it holds (the spec from before a rotation, another deployment's
  // version): it opens none of them either, and what it would write could not be read beside them.
  if (held.length === 0) {
    const versions = [...new Set(sealed.map((r) => Keyring.versionOf(r.details_enc)))].join(', ');
    throw new ConfigError('MOONDRAFT_MASTER_KEY', `holds no key of version ${versions}, which the newest data in this store is sealed with`);
  }
  for (const row of held) {
    try {
      keyring.decrypt(row.details_enc, fieldAad(row.id, 'details'));
      return;
    } catch {
      // Tried with the next one.
    }
  }
  const versions = [...new Set(held.map((r) => Keyring.versionOf(r.details_enc)))].join(', ');
  throw new ConfigError('MOONDRAFT_MASTER_KEY', `master key version ${versions} does not decrypt the data in this store: it is not the key the store was sealed with`);
}

/**
 * Refuses, in live, a store a sandbox's faucet has credited: that test money sits in balances
 * live would trade and withdraw against real accounts' funds. Live needs a database of its own.
 * (A sandbox's API keys there are refused by live's authenticator already: wrong_environment.)
 */
export async function assertNoSandboxTraces(store: Store): Promise<void> {
  const grant = await store.db.selectFrom('faucet_grants').select('id').limit(1).executeTakeFirst();
  if (grant) {
    throw new ConfigError('MOONDRAFT_ENV', 'live refuses this store: a sandbox has used it (it holds sandbox faucet grants: test money); give live a database of its own');
  }
}

/**
 * Pins the store to one environment: the first start on it (a server, `migrate` or any CLI
 * command; on a store from before the record, the first start after the upgrade) records
 * MOONDRAFT_ENV, and every later start in the other environment is refused. A live deployment
 * restarted without MOONDRAFT_ENV (the default is sandbox) would otherwise run as a sandbox on
 * real accounts: its faucet minting test money into them, sandbox relaxations applying. The
 * reverse (live on a sandbox's store) is refused too, grants or not. Processes starting together
 * all write the same row: the first one wins and the others read it.
 */
export async function assertStoreEnvironment(store: Store, env: Config['env'], now: number): Promise<void> {
  await store.db
    .insertInto('deployment_environment')
    .values({ id: 1, env, recorded_at: now })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const recorded = await store.db.selectFrom('deployment_environment').select('env').where('id', '=', 1).executeTakeFirst();
  if (recorded?.env !== env) {
    const other = recorded?.env ?? 'unknown';
    throw new ConfigError('MOONDRAFT_ENV', `is ${env}, but this store belongs to a ${other} deployment (recorded at its first start): set MOONDRAFT_ENV=${other}, or give ${env} a database of its own`);
  }
}

/**
 * The TLS certificate and key (MOONDRAFT_TLS_CERT, MOONDRAFT_TLS_KEY), checked as a pair before the
 * server is built: a file that holds something else, or a key that is not the certificate's, stops
 * start-up as a ConfigError naming the variable, in our words (never OpenSSL's codes, and never
 * anything quoted from the files). In live a self-signed certificate (`moondraft dev-cert`'s) is
 * refused: no client can verify it, so every client would have to turn verification off, and
 * then anyone on the path could pose as the server.
 */
export function readTlsFiles(tls: { certFile: string; keyFile: string }, env: Config['env'] = 'sandbox'): { cert: Buffer; key: Buffer } {
  const read = (variable: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(variable, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const cert = read('MOONDRAFT_TLS_CERT', tls.certFile);
  const key = read('MOONDRAFT_TLS_KEY', tls.keyFile);
  const open = privateFileProblem(tls.keyFile);
  if (open) throw new ConfigError('MOONDRAFT_TLS_KEY', open);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new ConfigError('MOONDRAFT_TLS_CERT', `${tls.certFile} holds no PEM certificate`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError('MOONDRAFT_TLS_KEY', `${tls.keyFile} holds no PEM private key (unencrypted)`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ConfigError('MOONDRAFT_TLS_KEY', `${tls.keyFile} is not the private key of the certificate in ${tls.certFile}`);
  }
  if (env === 'live' && certificate.subject === certificate.issuer && certificate.verify(certificate.publicKey)) {
    throw new ConfigError('MOONDRAFT_TLS_CERT', `${tls.certFile} is self-signed (as \`moondraft dev-cert\` writes): live needs a certificate from a CA its clients trust`);
  }
  try {
    createSecureContext({ cert, key });
  } catch {
    throw new ConfigError('MOONDRAFT_TLS_CERT', `${tls.certFile} and ${tls.keyFile} are not a PEM certificate and key that TLS can use`);
  }
  return { cert, key };
}
