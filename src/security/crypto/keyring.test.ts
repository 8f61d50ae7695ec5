import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Keyring, timingSafeEqual } from './keyring.js';

describe('Keyring', () => {
  const ring = Keyring.parse(Keyring.generateSpec(1));

  it('round-trips and never leaves the plaintext in the ciphertext', () => {
    const blob = ring.encrypt('mds_super_secret', 'key_1');
    expect(blob).toMatch(/^v1\./);
    expect(blob).not.toContain('mds_super_secret');
    expect(ring.decrypt(blob, 'key_1')).toBe('mds_super_secret');
    expect(ring.encrypt('same', 'a')).not.toBe(ring.encrypt('same', 'a')); // fresh IV each time
  });

  it('binds a ciphertext to its AAD: a row copied to another id does not decrypt', () => {
    const blob = ring.encrypt('secret', 'key_1');
    expect(() => ring.decrypt(blob, 'key_2')).toThrow();
  });

  it('detects tampering', () => {
    const blob = ring.encrypt('secret', 'k');
    const parts = blob.split('.');
    const ct = Buffer.from(parts[2]!, 'base64url');
    ct[0] = ct[0]! ^ 1;
    parts[2] = ct.toString('base64url');
    expect(() => ring.decrypt(parts.join('.'), 'k')).toThrow();
  });

  it('accepts only the full 128-bit GCM tag and a 96-bit IV (a truncated tag would be far easier to forge)', () => {
    const blob = ring.encrypt('secret', 'k');
    const parts = blob.split('.');
    for (const bytes of [4, 8, 12, 15]) {
      const short = [...parts];
      short[3] = Buffer.from(parts[3]!, 'base64url').subarray(0, bytes).toString('base64url');
      expect(() => ring.decrypt(short.join('.'), 'k'), `${bytes}-byte tag`).toThrow();
    }
    const longIv = [...parts];
    longIv[1] = Buffer.concat([Buffer.from(parts[1]!, 'base64url'), Buffer.alloc(4)]).toString('base64url');
    expect(() => ring.decrypt(longIv.join('.'), 'k')).toThrow();
    expect(ring.decrypt(blob, 'k')).toBe('secret');
  });

  it('keeps old versions readable after a new key is added; new data uses the newest', () => {
    const old = ring.encrypt('secret', 'k');
    const next = Keyring.parse(ring.specWithNewKey());
    expect(next.activeVersion).toBe(2);
    expect(next.decrypt(old, 'k')).toBe('secret');
    const fresh = next.encrypt('secret', 'k');
    expect(Keyring.versionOf(fresh)).toBe(2);
    expect(() => ring.decrypt(fresh, 'k')).toThrow(/version 2/);
  });

  it('refuses malformed specs', () => {
    expect(() => Keyring.parse('short')).toThrow(/32 bytes/);
    expect(() => Keyring.parse(`${Keyring.generateSpec(1)},${Keyring.generateSpec(1)}`)).toThrow(/twice/);
    expect(() => Keyring.parse('1:@@@')).toThrow();
  });
});

describe('timingSafeEqual', () => {
  it('compares strings of any length', () => {
    expect(timingSafeEqual('abc', 'abc')).toBe(true);
    expect(timingSafeEqual('abc', 'abd')).toBe(false);
    expect(timingSafeEqual('abc', 'abcd')).toBe(false);
    expect(timingSafeEqual('', '')).toBe(true);
  });
});

describe('derived keys', () => {
  it('are the same for the same master key, purpose and version, and differ otherwise', () => {
    const k1 = randomBytes(32);
    const a = new Keyring(new Map([[1, k1]]));
    const b = new Keyring(new Map([[1, k1], [2, randomBytes(32)]]));
    expect(a.deriveKey('x')!.equals(b.deriveKey('x', 1)!)).toBe(true);
    expect(a.deriveKey('x')).toHaveLength(32);
    expect(a.deriveKey('x')!.equals(a.deriveKey('y')!)).toBe(false);
    expect(b.deriveKey('x')!.equals(b.deriveKey('x', 1)!)).toBe(false); // the active version is 2
    expect(a.deriveKey('x')!.equals(k1)).toBe(false);
    expect(a.deriveKey('x', 2)).toBeUndefined();
  });
});
