import { describe, expect, it } from 'vitest';
import { secureRandomBytes } from './random.js';

describe('secureRandomBytes', () => {
  it('gives the size asked for, small (pooled) and large (direct)', () => {
    for (const n of [1, 10, 12, 64, 65, 4096]) expect(secureRandomBytes(n)).toHaveLength(n);
  });

  it('never hands out the same bytes twice, across many pool refills', () => {
    const seen = new Set<string>();
    // 12-byte draws, as AES-GCM nonces: 20 000 of them span about 60 pools of 4 KiB.
    for (let i = 0; i < 20_000; i++) seen.add(secureRandomBytes(12).toString('hex'));
    expect(seen.size).toBe(20_000);
  });

  it('later draws do not alter an earlier one', () => {
    const first = secureRandomBytes(16);
    const copy = Buffer.from(first);
    for (let i = 0; i < 1000; i++) secureRandomBytes(12); // several refills
    expect(first.equals(copy)).toBe(true);
  });

  it('looks uniform: every byte value appears, no value dominates', () => {
    const counts = new Array<number>(256).fill(0);
    for (let i = 0; i < 2000; i++) for (const b of secureRandomBytes(32)) counts[b]! += 1;
    // 64 000 bytes: 250 expected per value; a generator stuck on a pattern would leave values out.
    expect(Math.min(...counts)).toBeGreaterThan(150);
    expect(Math.max(...counts)).toBeLessThan(350);
  });
});
