import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual as nodeTimingSafeEqual } from 'node:crypto';
import { secureRandomBytes } from '../../lib/random.js';

/** AES-GCM nonce and authentication tag sizes of every keyring ciphertext. */
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Versioned AES-256-GCM encryption of secrets at rest.
 *
 * A ciphertext is `v<version>.<iv>.<ciphertext>.<tag>` (base64url parts): the master-key version
 * travels inside it, so old rows stay readable after a new key is added and `moondraft keys
 * rotate-master` can re-encrypt them. Every call takes an AAD string (for example the row's id):
 * a ciphertext copied into another row fails authentication instead of decrypting there.
 *
 * MOONDRAFT_MASTER_KEY is either one base64 key (version 1) or `1:<base64>,2:<base64>,…`; the
 * highest version encrypts, all versions decrypt. Each key is 32 bytes.
 */
export class Keyring {
  private readonly keys: Map<number, Buffer>;
  readonly activeVersion: number;

  constructor(keys: Map<number, Buffer>) {
    if (keys.size === 0) throw new Error('a keyring needs at least one key');
    for (const [v, k] of keys) if (k.length !== 32) throw new Error(`master key version ${v} is not 32 bytes`);
    this.keys = keys;
    this.activeVersion = Math.max(...keys.keys());
  }

  /** Parses the MOONDRAFT_MASTER_KEY format; throws with a message that never includes key material. */
  static parse(spec: string): Keyring {
    const keys = new Map<number, Buffer>();
    const parts = spec.split(',').map((s) => s.trim()).filter(Boolean);
    for (const part of parts) {
      const m = /^(?:(\d{1,6}):)?([A-Za-z0-9+/_-]+=*)$/.exec(part);
      if (!m) throw new Error('each master key must be base64, optionally prefixed with "<version>:"');
      const version = m[1] === undefined ? 1 : Number(m[1]);
      if (version < 1) throw new Error('master key versions start at 1');
      if (keys.has(version)) throw new Error(`master key version ${version} appears twice`);
      const key = Buffer.from(m[2]!, m[2]!.includes('-') || m[2]!.includes('_') ? 'base64url' : 'base64');
      if (key.length !== 32) throw new Error(`master key version ${version} must decode to 32 bytes (got ${key.length})`);
      // All zeros (or any one byte repeated) is a placeholder, not a key: anyone could decrypt.
      if (key.every((b) => b === key[0])) throw new Error(`master key version ${version} is one byte repeated, not a random key (generate one with \`openssl rand -base64 32\`)`);
      keys.set(version, key);
    }
    if (parts.length > 1 && parts.some((p) => !p.includes(':'))) throw new Error('with several master keys, every key needs its "<version>:" prefix');
    return new Keyring(keys);
  }

  /** Whether this keyring holds the key of `version`. */
  has(version: number): boolean {
    return this.keys.has(version);
  }

  /**
   * A 32-byte key for one `purpose` (a MAC key, say), derived from the master key of `version`
   * (default: the active one) with HKDF-SHA256: every process holding the same keyring derives the
   * same key, a key for one purpose says nothing about another's or about the master key, and no
   * new secret needs configuring. Undefined when this keyring lacks `version`.
   */
  deriveKey(purpose: string, version = this.activeVersion): Buffer | undefined {
    const key = this.keys.get(version);
    if (!key) return undefined;
    return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `moondraft/${purpose}/v${version}`, 32));
  }

  static generateSpec(version = 1): string {
    return `${version}:${randomBytes(32).toString('base64')}`;
  }

  /** The spec with a freshly generated key added as the new active version. */
  specWithNewKey(): string {
    const entries = [...this.keys].sort((a, b) => a[0] - b[0]).map(([v, k]) => `${v}:${k.toString('base64')}`);
    entries.push(Keyring.generateSpec(this.activeVersion + 1));
    return entries.join(',');
  }

  encrypt(plaintext: string | Buffer, aad: string): string {
    // A fresh 96-bit nonce per encryption (from the CSPRNG, pooled: see secureRandomBytes).
    const iv = secureRandomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.activeVersion)!, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(`${this.activeVersion}|${aad}`, 'utf8'));
    const ct = Buffer.concat([cipher.update(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext), cipher.final()]);
    return `v${this.activeVersion}.${iv.toString('base64url')}.${ct.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}`;
  }

  decryptBuffer(blob: string, aad: string): Buffer {
    const m = /^v(\d+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]+)$/.exec(blob);
    if (!m) throw new Error('not a keyring ciphertext');
    const version = Number(m[1]);
    const key = this.keys.get(version);
    if (!key) throw new Error(`master key version ${version} is not in the keyring`);
    // Exactly what encrypt writes: a 96-bit IV and the full 128-bit tag. node:crypto would accept a
    // tag cut to 4 bytes, and a forger then needs about 2^32 tries instead of 2^128.
    const iv = Buffer.from(m[2]!, 'base64url');
    const tag = Buffer.from(m[4]!, 'base64url');
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new Error('not a keyring ciphertext');
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(`${version}|${aad}`, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(Buffer.from(m[3]!, 'base64url')), decipher.final()]);
  }

  decrypt(blob: string, aad: string): string {
    return this.decryptBuffer(blob, aad).toString('utf8');
  }

  /** Version a ciphertext was made with (for re-encryption sweeps). */
  static versionOf(blob: string): number | undefined {
    const m = /^v(\d+)\./.exec(blob);
    return m ? Number(m[1]) : undefined;
  }
}

/** Constant-time comparison of two strings or buffers of possibly different lengths. */
export function timingSafeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const ab = typeof a === 'string' ? Buffer.from(a, 'utf8') : a;
  const bb = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  if (ab.length !== bb.length) {
    nodeTimingSafeEqual(ab, ab); // same work either way
    return false;
  }
  return nodeTimingSafeEqual(ab, bb);
}
