import { describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock.js';
import { MemoryState } from './memory.js';

describe('MemoryState.watchWrites', () => {
  it('tells of every write to a key under the prefix, and of nothing else (expiry is not a write)', async () => {
    const clock = new ManualClock(1_000_000);
    const state = new MemoryState(clock);
    const seen: string[] = [];
    state.watchWrites('trading:halt:', (key) => seen.push(key));
    await state.set('trading:halt:global', '{}', 1000);
    await state.set('other:key', 'x');
    await state.setIfAbsent('trading:halt:market:A-USDC', '{}', 1000);
    expect(await state.setIfAbsent('trading:halt:market:A-USDC', '{}', 1000)).toBe(false); // refused: no write
    await state.take('trading:halt:market:A-USDC');
    await state.del('trading:halt:global');
    await state.incr('trading:halted-count', 1, 1000); // a counter outside the prefix's keys
    clock.advance(2000);
    await state.set('trading:halt:global', '{}', 10);
    clock.advance(20); // expires unseen
    expect(await state.get('trading:halt:global')).toBeNull();
    expect(seen).toEqual(['trading:halt:global', 'trading:halt:market:A-USDC', 'trading:halt:market:A-USDC', 'trading:halt:global', 'trading:halt:global']);
    await state.close();
  });
});

describe('MemoryState.watchWrites, counters and maxima', () => {
  it('tells of incr and setMax too: they write the key', async () => {
    const state = new MemoryState(new ManualClock(1_000_000));
    const seen: string[] = [];
    state.watchWrites('trading:halt:', (key) => seen.push(key));
    await state.incr('trading:halt:n', 1, 1000);
    await state.setMax('trading:halt:v', 3, 1000);
    expect(seen).toEqual(['trading:halt:n', 'trading:halt:v']);
    await state.close();
  });
});

describe('MemoryState.firstSeen', () => {
  it('answers by the expiry of each id, and drops a generation once all of it has expired', async () => {
    const clock = new ManualClock(1_000_000);
    const state = new MemoryState(clock);
    expect(await state.firstSeen('r', 'long', 10_000)).toBe(true);
    expect(await state.firstSeen('r', 'short', 100)).toBe(true);
    clock.advance(150);
    // 'short' expired while 'long' lives: it answers as new all the same.
    expect(await state.firstSeen('r', 'short', 100)).toBe(true);
    expect(await state.firstSeen('r', 'short', 100)).toBe(false);
    expect(await state.firstSeen('r', 'long', 10_000)).toBe(false);
    expect(state.remembered('r')).toBe(2);
    clock.advance(9_900); // a span (the longest TTL) after the first id: a new generation begins
    expect(await state.firstSeen('r', 'long', 10_000)).toBe(true); // expired just now
    expect(await state.firstSeen('r', 'fresh', 10_000)).toBe(true);
    expect(state.remembered('r')).toBe(2); // everything in the first generation had expired: it is gone
    clock.advance(5_000);
    expect(await state.firstSeen('r', 'long', 10_000)).toBe(false); // found in the new generation
    clock.advance(5_000);
    expect(await state.firstSeen('r', 'other', 10_000)).toBe(true);
    expect(state.remembered('r')).toBe(1); // 'long' and 'fresh' expired just now, and their generation with them
    clock.advance(25_000); // two spans of silence: nothing is left
    expect(await state.firstSeen('r', 'after', 10_000)).toBe(true);
    expect(state.remembered('r')).toBe(1);
    await state.close();
  });

  it('keeps its ids out of the key space, and a longer TTL widens the span at once', async () => {
    const clock = new ManualClock(1_000_000);
    const state = new MemoryState(clock);
    for (let i = 0; i < 1000; i++) expect(await state.firstSeen('r', `key_${i % 7}:${i.toString(16).padStart(64, '0')}`, 1_000)).toBe(true);
    expect(state.remembered('r')).toBe(1000);
    expect(await state.keys('')).toEqual([]); // nothing in the key space
    expect(await state.firstSeen('r', 'lasting', 60_000)).toBe(true);
    clock.advance(30_000); // well past the first TTL, within the new one
    expect(await state.firstSeen('r', 'lasting', 60_000)).toBe(false);
    clock.advance(29_999);
    expect(await state.firstSeen('r', 'lasting', 60_000)).toBe(false);
    clock.advance(1);
    expect(await state.firstSeen('r', 'lasting', 60_000)).toBe(true);
    await state.close();
  });
});

describe('MemoryState.firstSeen when the clock steps back', () => {
  it('keeps dropping expired ids (memory stays bounded) and still refuses the ids recorded before the step', async () => {
    const clock = new ManualClock(1_000_000_000);
    const state = new MemoryState(clock);
    // 1 id per 10 ms with a 1 s TTL: about 100 to 200 ids held in the steady state.
    for (let i = 0; i < 100; i++) {
      expect(await state.firstSeen('r', `before-${i}`, 1_000)).toBe(true);
      clock.advance(10);
    }
    clock.advance(-3_600_000); // an NTP step back by an hour
    for (let i = 0; i < 1_000; i++) {
      expect(await state.firstSeen('r', `after-${i}`, 1_000)).toBe(true);
      clock.advance(10);
    }
    // Ten seconds after the step only the last second or two of ids are alive, and the ids from
    // before the step, whose expiries lie an hour ahead of this clock: nothing else may pile up
    // (at a signed API's rate, an hour of every request would be gigabytes).
    expect(state.remembered('r')).toBeLessThanOrEqual(100 + 300);
    expect(await state.firstSeen('r', 'before-99', 1_000)).toBe(false); // its expiry has not come by this clock
    expect(await state.firstSeen('r', 'after-999', 1_000)).toBe(false);
    expect(await state.firstSeen('r', 'after-0', 1_000)).toBe(true); // expired long ago
    await state.close();
  });
});
