import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { idFrom, newId } from './ids.js';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** The 80 random bits as one big-endian integer in 16 base32 characters (the definition). */
function reference(prefix: string, now: number, bytes: Uint8Array): string {
  let time = '';
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = ALPHABET[t % 32] + time;
  let acc = 0n;
  for (const b of bytes) acc = (acc << 8n) | BigInt(b);
  let rand = '';
  for (let i = 0; i < 16; i++, acc >>= 5n) rand = ALPHABET[Number(acc & 31n)] + rand;
  return `${prefix}_${time}${rand}`;
}

describe('ids', () => {
  it('encode time and the 80 random bits exactly as one base32 number', () => {
    const cases = [new Uint8Array(10), new Uint8Array(10).fill(0xff), Uint8Array.from([0x80, 0, 0, 0, 0, 0x80, 0, 0, 0, 1]), ...Array.from({ length: 500 }, () => randomBytes(10))];
    for (const bytes of cases) expect(idFrom('ord', 1_764_345_600_123, bytes)).toBe(reference('ord', 1_764_345_600_123, bytes));
  });

  it('sort by creation time and differ within a millisecond', () => {
    const t = Date.UTC(2026, 10, 29);
    const ids = [newId('x', t), newId('x', t + 1), newId('x', t + 60_000), newId('x', t + 86_400_000)];
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) expect(id).toMatch(/^x_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(new Set(Array.from({ length: 1000 }, () => newId('x', t))).size).toBe(1000);
  });
});
