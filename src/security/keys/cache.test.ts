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

  it('a clock stepped back does not keep an entry beyond maxAgeMs: its age is unknown, so it is forgotten', () => {
    const clock = new ManualClock();
    const cache = new BoundedCache<string, number>({ maxEntries: 10, maxAgeMs: 1000, clock });
    cache.set('a', 1);
    // NTP steps the clock back an hour: measured from the stored time, the entry would look fresh
    // for an hour more (a revoked key's cached record outliving its one-hour version flag).
    clock.advance(-3_600_000);
    expect(cache.get('a')).toBeUndefined();
    cache.set('b', 2);
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
