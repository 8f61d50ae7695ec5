import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { exportJWK, type JWK } from 'jose';
import { privateFileProblem } from '../../config/private-file.js';
import { writeSecretFile } from '../../config/secrets.js';

/**
 * The JWT signing keyset: a JSON file (mode 0600) of RS256 keys, newest active.
 *
 * Rotation without downtime: a new key is appended and signs new tokens at once; the previous key
 * gets `retiredAt` and keeps verifying (and stays in JWKS) until `retiredAt + maxTokenLifetime`,
 * after which it is dropped. Several processes share the file the way they share a TLS key.
 */
export interface StoredSigningKey {
  kid: string;
  createdAt: number;
  retiredAt: number | null;
  privateKeyPem: string;
}

interface LoadedKey {
  kid: string;
  createdAt: number;
  retiredAt: number | null;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
}

export function generateSigningKey(now: number): StoredSigningKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    kid: `k${now.toString(36)}${randomBytes(4).toString('hex')}`,
    createdAt: now,
    retiredAt: null,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

export function readKeysetFile(file: string): StoredSigningKey[] {
  const text = readFileSync(file, 'utf8');
  const open = privateFileProblem(file);
  if (open) throw new Error(open);
  let parsed: { keys?: StoredSigningKey[] };
  try {
    parsed = JSON.parse(text) as { keys?: StoredSigningKey[] };
  } catch (err) {
    // Never the parser's message: it quotes the text around the error, here private key material
    // (and it reaches the start-up error line and, on every failed reload, the log). Only where.
    const at = /at position (\d+)/.exec((err as Error).message);
    throw new Error(`${file} is not valid JSON${at ? ` (line ${text.slice(0, Number(at[1])).split('\n').length})` : ''}`);
  }
  if (!Array.isArray(parsed.keys) || parsed.keys.length === 0) throw new Error(`${file} holds no signing keys`);
  return parsed.keys;
}

export function writeKeysetFile(file: string, keys: StoredSigningKey[]): void {
  const body = `${JSON.stringify({ keys }, null, 2)}\n`;
  if (!existsSync(file)) return writeSecretFile(file, body);
  const tmp = `${file}.${process.pid}.tmp`;
  // A stale temporary file of this name (a crash between write and rename) is removed first: a mode
  // given to writeFileSync applies only to a file it creates, and the key must never sit in 0644.
  rmSync(tmp, { force: true });
  writeSecretFile(tmp, body);
  renameSync(tmp, file); // atomic replace: readers never see half a file
}

/** Creates the keyset with one key when missing (sandbox); returns whether it did. */
export function ensureKeysetFile(file: string, now: number): boolean {
  if (existsSync(file)) return false;
  writeKeysetFile(file, [generateSigningKey(now)]);
  return true;
}

/**
 * Adds a new active key and retires the current one; drops keys retired longer than
 * `maxTokenLifetimeMs` ago (no token they signed can still be valid).
 */
export function rotateKeysetFile(file: string, now: number, maxTokenLifetimeMs: number): StoredSigningKey {
  const keys = existsSync(file) ? readKeysetFile(file) : [];
  const kept = keys
    .map((k) => (k.retiredAt === null ? { ...k, retiredAt: now } : k))
    .filter((k) => k.retiredAt === null || k.retiredAt + maxTokenLifetimeMs > now);
  const fresh = generateSigningKey(now);
  writeKeysetFile(file, [...kept, fresh]);
  return fresh;
}

/** The shortest RSA modulus RS256 signs and verifies with (jose refuses shorter ones). */
const MIN_RSA_BITS = 2048;

/** How often an unknown kid may make a process re-read the keyset file. */
const UNKNOWN_KID_RELOAD_MS = 1_000;

export class SigningKeys {
  private keys: LoadedKey[] = [];
  private loadedFrom = '';
  /** When an unknown kid last made us re-read the file, and that read while it runs. */
  private lastUnknownKidReload = 0;
  private unknownKidReload: Promise<void> | undefined;
  /** The reload under way, which the next one waits for. */
  private reloading: Promise<void> | undefined;
  private readonly activeChanged: ((kid: string) => void)[] = [];

  private constructor(
    private readonly file: string,
    private readonly maxTokenLifetimeMs: number,
  ) {}

  static async load(file: string, maxTokenLifetimeMs: number): Promise<SigningKeys> {
    const s = new SigningKeys(file, maxTokenLifetimeMs);
    await s.reload();
    return s;
  }

  /**
   * Re-reads the file (cheap when unchanged); called periodically so rotations reach every process.
   * One reload at a time: a second waits for the first and then reads the file, so an older read
   * never finishes last and rolls the keyset back (the reload timer and an unknown kid can overlap).
   */
  reload(): Promise<void> {
    const run = this.reloading ? this.reloading.then(() => this.load()) : this.load();
    const settled = run.catch(() => undefined);
    this.reloading = settled;
    void settled.then(() => {
      if (this.reloading === settled) this.reloading = undefined;
    });
    return run;
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read ${this.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (text === this.loadedFrom) return;
    const stored = readKeysetFile(this.file);
    const loaded: LoadedKey[] = [];
    for (const k of stored) {
      // Our own words, never Node's or OpenSSL's: a wrong type's message quotes the value. And RSA
      // only: another key type would load here and then fail every signature (every sign-in a 500).
      let privateKey: KeyObject | undefined;
      try {
        privateKey = typeof k.privateKeyPem === 'string' ? createPrivateKey(k.privateKeyPem) : undefined;
      } catch {
        privateKey = undefined;
      }
      if (privateKey?.asymmetricKeyType !== 'rsa') throw new Error(`${this.file}: a key's privateKeyPem is not a PEM RSA private key`);
      // RS256 (jose) refuses to sign or verify with a shorter modulus: every sign-in would be a 500.
      if ((privateKey.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) throw new Error(`${this.file}: a key's RSA modulus is shorter than ${MIN_RSA_BITS} bits, which RS256 needs`);
      const publicKey = createPublicKey(privateKey);
      const jwk = await exportJWK(publicKey);
      loaded.push({ kid: k.kid, createdAt: k.createdAt, retiredAt: k.retiredAt, privateKey, publicKey, publicJwk: { ...jwk, kid: k.kid, alg: 'RS256', use: 'sig' } });
    }
    if (!loaded.some((k) => k.retiredAt === null)) throw new Error(`${this.file} has no active (unretired) signing key`);
    const before = this.keys.length > 0 ? this.active() : undefined;
    const known = new Set(this.keys.map((k) => k.kid));
    this.keys = loaded.sort((a, b) => a.createdAt - b.createdAt);
    this.loadedFrom = text;
    const now = this.active().kid;
    if (before === undefined || now === before.kid) return;
    // Several rotations between two reloads: each key they added after the one that signed
    // before signed new tokens in turn (somewhere), and is told too, oldest first, the active last.
    const from = this.keys.findIndex((k) => k.kid === before.kid);
    const between = from < 0 ? [] : this.keys.slice(from + 1).filter((k) => !known.has(k.kid) && k.kid !== now);
    // Every listener hears of every key, whatever another one throws; the reload then fails with it.
    const errors: unknown[] = [];
    for (const kid of [...between.map((k) => k.kid), now]) {
      for (const fn of this.activeChanged) {
        try {
          fn(kid);
        } catch (err) {
          errors.push(err);
        }
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `signing key change listeners failed: ${errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ')}`);
  }

  /**
   * Calls `fn` with the new kid whenever a reload finds that another key signs new tokens (a
   * rotation made while this process runs); not for the keyset it started with. When several
   * rotations happened since the last reload, it is called for each key they added, in order.
   */
  onActiveChanged(fn: (kid: string) => void): void {
    this.activeChanged.push(fn);
  }

  /** The key that signs new tokens: the newest unretired one. */
  active(): { kid: string; privateKey: KeyObject } {
    const k = [...this.keys].reverse().find((key) => key.retiredAt === null)!;
    return { kid: k.kid, privateKey: k.privateKey };
  }

  /** Public key for `kid` if it may still verify tokens at `now`. */
  verificationKey(kid: string, now: number): KeyObject | undefined {
    const k = this.keys.find((key) => key.kid === kid);
    if (!k) return undefined;
    if (k.retiredAt !== null && k.retiredAt + this.maxTokenLifetimeMs <= now) return undefined;
    return k.publicKey;
  }

  /**
   * As verificationKey, but a kid this process does not know yet makes it re-read the keyset file
   * first (at most once a second): another process may already sign with a key added by a rotation
   * that this process's 5-second reload has not picked up, and its tokens must not be refused
   * meanwhile. A kid that is in no keyset stays unknown.
   */
  async currentVerificationKey(kid: string, now: number): Promise<KeyObject | undefined> {
    if (this.keys.some((key) => key.kid === kid)) return this.verificationKey(kid, now);
    if (!this.unknownKidReload && Date.now() - this.lastUnknownKidReload >= UNKNOWN_KID_RELOAD_MS) {
      this.lastUnknownKidReload = Date.now();
      this.unknownKidReload = this.reload()
        .catch(() => undefined) // an unreadable file keeps the keys we have; the timer logs it
        .finally(() => {
          this.unknownKidReload = undefined;
        });
    }
    if (this.unknownKidReload) await this.unknownKidReload;
    return this.verificationKey(kid, now);
  }

  /**
   * Every key of the keyset file, whether or not it may still verify tokens: the keys this
   * deployment holds, which the audit log trusts for its signed checkpoints (a checkpoint must
   * keep verifying long after the tokens of its key have expired).
   */
  held(): { kid: string; publicKey: KeyObject; publicJwk: JWK }[] {
    return this.keys.map((k) => ({ kid: k.kid, publicKey: k.publicKey, publicJwk: k.publicJwk }));
  }

  /** JWKS document: every key that may still verify a token. */
  jwks(now: number): { keys: JWK[] } {
    return { keys: this.keys.filter((k) => this.verificationKey(k.kid, now)).map((k) => k.publicJwk) };
  }
}
