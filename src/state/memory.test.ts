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
