import { describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock.js';
import { MemoryState } from '../state/memory.js';
import { haltStatus, setHalt } from './halt.js';

describe('setHalt', () => {
  const at = Date.UTC(2026, 2, 1, 12);

  it('halts the market it names', async () => {
    const state = new MemoryState(new ManualClock(at));
    await setHalt(state, { market: 'MOON-USDC', reason: 'incident', by: 'acc_admin', at });
    expect(await haltStatus(state, 'MOON-USDC')).toMatchObject({ halted: true, scope: 'market', record: { reason: 'incident', by: 'acc_admin' } });
  });

  it('refuses a market symbol no market can have instead of setting a halt that halts nothing', async () => {
    const state = new MemoryState(new ManualClock(at));
    for (const market of ['moon-usdc', 'MOON', '', 'MOON-USDC ']) {
      await expect(setHalt(state, { market, reason: 'incident', by: 'acc_admin', at }), JSON.stringify(market)).rejects.toThrow(/market/);
    }
    expect(await state.getMany(['trading:halt:market:moon-usdc', 'trading:halt:market:MOON'])).toEqual([null, null]);
  });

  it('refuses an expiry that would lift the halt at once (or never, or fail only on Redis)', async () => {
    const state = new MemoryState(new ManualClock(at));
    for (const ttlMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(setHalt(state, { market: 'MOON-USDC', reason: 'incident', by: 'acc_admin', at, ttlMs }), String(ttlMs)).rejects.toThrow(/ttlMs/);
    }
    expect(await haltStatus(state, 'MOON-USDC')).toEqual({ halted: false });
    await setHalt(state, { reason: 'incident', by: 'acc_admin', at, ttlMs: 60_000 });
    expect(await haltStatus(state, 'MOON-USDC')).toMatchObject({ halted: true, scope: 'global' });
  });
});
