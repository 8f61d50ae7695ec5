import { secureRandomBytes } from './random.js';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32, as ULID

/** `n` (< 2^53) as `digits` base32 characters, most significant first. */
function base32(n: number, digits: number): string {
  let out = '';
  for (let i = 0; i < digits; i++) {
    out = ALPHABET[n % 32] + out;
    n = Math.floor(n / 32);
  }
  return out;
}

/** Five bytes from `at` as a 40-bit number. */
const forty = (b: Uint8Array, at: number) => b[at]! * 2 ** 32 + (((b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]!) >>> 0);

/**
 * The id of `newId` for a given time and 10 random bytes: the 80 bits are written as two 40-bit
 * halves of 8 characters each (exact in a double, no BigInt on the hot path).
 */
export function idFrom(prefix: string, now: number, random: Uint8Array): string {
  return `${prefix}_${base32(now, 10)}${base32(forty(random, 0), 8)}${base32(forty(random, 5), 8)}`;
}

/**
 * Time-ordered, unguessable identifiers: `prefix_` + 10 chars of millisecond time + 16 chars (80 bits)
 * of randomness. Sorting ids sorts by creation time, which keeps store indexes append-mostly.
 */
export function newId(prefix: string, now = Date.now()): string {
  return idFrom(prefix, now, secureRandomBytes(10));
}
