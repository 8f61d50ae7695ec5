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

/** Ids are `prefix_`, 10 characters of time, then the 80 bits as two 40-bit halves of 8 characters each (exact in a double, no BigInt on the hot path). */
function encode(prefix: string, now: number, hi: number, lo: number): string {
  return `${prefix}_${base32(now, 10)}${base32(hi, 8)}${base32(lo, 8)}`;
}

/** The id of `newId` for a given time and 10 random bytes. */
export function idFrom(prefix: string, now: number, random: Uint8Array): string {
  return encode(prefix, now, forty(random, 0), forty(random, 5));
}

const TWO_40 = 2 ** 40;
/** The last 80-bit value given out for each recent millisecond (insertion order: oldest first). */
const recent = new Map<number, { hi: number; lo: number }>();
const RECENT_MAX = 256;

/**
 * Time-ordered, unguessable identifiers: `prefix_` + 10 chars of millisecond time + 16 chars (80 bits)
 * of randomness. Sorting ids sorts by creation time, which keeps store indexes append-mostly, and
 * within one millisecond (`now`) by the order they were made: the first id of a millisecond is
 * random, each next one is the last plus a random step of 1 to 2^32 (RFC 9562's monotonic random
 * method), so ids made together, such as a batch's orders, list in the order they were made while
 * the next one still cannot be guessed from the last.
 */
export function newId(prefix: string, now = Date.now()): string {
  const last = recent.get(now);
  if (last) {
    const s = secureRandomBytes(4);
    let lo = last.lo + (((s[0]! << 24) | (s[1]! << 16) | (s[2]! << 8) | s[3]!) >>> 0) + 1;
    let hi = last.hi;
    if (lo >= TWO_40) {
      lo -= TWO_40;
      hi += 1;
    }
    // 80 bits used up within one millisecond (never in practice): go on in the next one.
    if (hi >= TWO_40) return newId(prefix, now + 1);
    last.hi = hi;
    last.lo = lo;
    return encode(prefix, now, hi, lo);
  }
  const r = secureRandomBytes(10);
  const first = { hi: forty(r, 0), lo: forty(r, 5) };
  if (recent.size >= RECENT_MAX) recent.delete(recent.keys().next().value!);
  recent.set(now, first);
  return encode(prefix, now, first.hi, first.lo);
}

/**
 * The counter `k` (0, 1, 2, …) as base-36 text that sorts in the counter's order however large it
 * grows: `width` digits while they suffice (`00a`: what ids made before this rule already hold),
 * then a run of `z`s one full width long followed by one digit more (`zzz0000` follows `zzz`), and
 * so on. Sub-ids made from a parent id and a counter (a taker order's fills, a transaction's ledger
 * entries) page by their text, so a fixed width that overflowed would list them out of order.
 */
export function sortableCounter(k: number, width: number): string {
  let prefix = '';
  let rest = k;
  for (let w = width; ; w++) {
    const capacity = 36 ** w;
    if (rest < capacity) return prefix + rest.toString(36).padStart(w, '0');
    rest -= capacity;
    prefix += 'z'.repeat(w);
  }
}
