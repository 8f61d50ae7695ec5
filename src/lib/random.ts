import { randomBytes } from 'node:crypto';

const POOL_BYTES = 4096;
const MAX_POOLED = 64;
let pool: Buffer = Buffer.alloc(0);
let offset = 0;

/**
 * Cryptographically secure random bytes for the request hot path (record ids, AES-GCM nonces).
 * Each `crypto.randomBytes` call costs a trip into OpenSSL of several microseconds however few bytes
 * it returns, so small draws come from a pool filled from the same CSPRNG 4 KiB at a time (as Node's
 * own `randomUUID` does). Every byte is handed out once. The result is a view into a pool that is
 * never written again (a new pool is allocated when one runs out), so no other draw can alter it;
 * callers use it at once (a nonce, an id), which keeps a pool from being held for long.
 */
export function secureRandomBytes(size: number): Buffer {
  if (size > MAX_POOLED) return randomBytes(size);
  if (offset + size > pool.length) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const out = pool.subarray(offset, offset + size);
  offset += size;
  return out;
}
