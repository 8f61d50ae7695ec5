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

  it('made in one millisecond, sort in the order they were made, by steps that cannot be guessed', () => {
    const t = Date.UTC(2026, 10, 29, 3, 0, 0, 7);
    const made = Array.from({ length: 2000 }, () => newId('ord', t));
    expect([...made].sort()).toEqual(made);
    // The 80 bits after the time, as a number: each id is the last plus a random step of 1 to 2^32.
    const bits = (id: string) => [...id.slice(id.indexOf('_') + 11)].reduce((n, c) => n * 32n + BigInt(ALPHABET.indexOf(c)), 0n);
    const steps = made.slice(1).map((id, i) => bits(id) - bits(made[i]!));
    for (const step of steps) expect(step >= 1n && step <= 2n ** 32n).toBe(true);
    expect(new Set(steps).size).toBeGreaterThan(1990);
  });

  it('keep each millisecond in order when ids of several milliseconds are made in turn', () => {
    const t = Date.UTC(2026, 10, 29, 3, 0, 1);
    // A batch's time, stamped on its ids, while other work makes ids at the clock's time.
    const made = Array.from({ length: 300 }, (_, i) => ({ at: i % 3 === 0 ? t : t + 1 + (i % 2), id: '' }));
    for (const m of made) m.id = newId('ord', m.at);
    const byTime = [...made].sort((a, b) => a.at - b.at).map((m) => m.id); // stable: creation order within a time
    expect([...made.map((m) => m.id)].sort()).toEqual(byTime);
  });
});

describe('sortableCounter', () => {
  it('sorts as text in the numeric order of the counter, past every fixed width', async () => {
    const { sortableCounter } = await import('./ids.js');
    const ks: number[] = [];
    for (const edge of [0, 36 ** 3, 36 ** 3 + 36 ** 4, 36 ** 3 + 36 ** 4 + 36 ** 5]) for (let d = -3; d <= 3; d++) if (edge + d >= 0) ks.push(edge + d);
    ks.push(1, 35, 36, 1295, 1296, 46_655, 46_656, 100_000, 1_000_000, 5_000_000);
    const sorted = [...new Set(ks)].sort((a, b) => a - b);
    const texts = sorted.map((k) => sortableCounter(k, 3));
    expect(new Set(texts).size).toBe(texts.length);
    expect([...texts].sort()).toEqual(texts);
    // Below the first width's capacity, the text is the plain zero-padded number (ids already stored keep their meaning).
    expect(sortableCounter(10, 3)).toBe('00a');
    expect(sortableCounter(46_655, 3)).toBe('zzz');
    expect(sortableCounter(46_656, 3)).toBe('zzz0000');
    expect(sortableCounter(10, 4)).toBe('000a');
    for (const t of texts) expect(t).toMatch(/^[0-9a-z]+$/);
  });

  it("keeps fill ids after a taker order's 46,656th fill in trade order", async () => {
    const { sortableCounter } = await import('./ids.js');
    const base = 'fil_01JXYZ';
    const ids = [46_654, 46_655, 46_656, 46_657, 60_000].map((k) => `${base}.${sortableCounter(k, 3)}`);
    expect([...ids].sort()).toEqual(ids);
  });
});
