import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { BoundedCache } from './cache.js';

describe('BoundedCache', () => {
  it('keeps at most maxEntries, dropping the least recently used (recency refreshed at most once a second)', () => {
    const evicted: number[] = [];
    const clock = new ManualClock();
    const cache = new BoundedCache<string, number>({ maxEntries: 2, maxAgeMs: 10_000, clock, onEvict: (v) => evicted.push(v) });
    cache.set('a', 1);
    cache.set('b', 2);
    clock.advance(1000);
    expect(cache.get('a')).toBe(1); // a is now the most recent
    cache.set('c', 3);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    expect(cache.size).toBe(2);
    expect(evicted).toEqual([2]);
  });

  it('a read within a second of the last refresh leaves the order alone', () => {
    const clock = new ManualClock();
    const cache = new BoundedCache<string, number>({ maxEntries: 2, maxAgeMs: 10_000, clock });
    cache.set('a', 1);
    cache.set('b', 2);
    clock.advance(999);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBe(2);
  });

  it('forgets entries older than maxAgeMs, however often they are read', () => {
    const clock = new ManualClock();
    const cache = new BoundedCache<string, number>({ maxEntries: 10, maxAgeMs: 1000, clock });
    cache.set('a', 1);
    clock.advance(999);
    expect(cache.get('a')).toBe(1);
    clock.advance(1);
    expect(cache.get('a')).toBeUndefined();
  });

  it('wipes values when they leave (the secret cache zeroes its buffers)', () => {
    const cache = new BoundedCache<string, Buffer>({ maxEntries: 10, maxAgeMs: 1000, clock: new ManualClock(), onEvict: (b) => b.fill(0) });
    const secret = Buffer.from('secret');
    cache.set('k', secret);
    cache.deleteWhere((_v, k) => k === 'k');
    expect(secret.equals(Buffer.alloc(6))).toBe(true);
  });
});
