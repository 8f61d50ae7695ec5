import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { MemoryState } from '../../state/memory.js';
import type { SharedState } from '../../state/port.js';
import { RedisState } from '../../state/redis.js';
import { REDIS_URL, serviceAvailable } from '../../../test/support/services.js';
import { RECV_WINDOW } from '../signing/canonical.js';
import { REPLAY_TTL_MS, ReplayGuard } from './index.js';

const redisUp = await serviceAvailable('redis');
const opened: SharedState[] = [];
afterAll(async () => {
  for (const s of opened) await s.close();
});

describe('replay memory TTL', () => {
  it('outlives the largest receive window plus the future tolerance', () => {
    expect(REPLAY_TTL_MS).toBeGreaterThanOrEqual(RECV_WINDOW.maxMs + RECV_WINDOW.futureToleranceMs);
  });

  it('remembers an accepted request for as long as its timestamp could still pass', async () => {
    const clock = new ManualClock();
    const state = new MemoryState(clock);
    opened.push(state);
    const guard = new ReplayGuard(state);
    expect(await guard.firstUse('key_1', 'digest', Date.now())).toBe(true);
    clock.advance(RECV_WINDOW.maxMs + RECV_WINDOW.futureToleranceMs);
    expect(await guard.firstUse('key_1', 'digest', Date.now())).toBe(false);
    clock.advance(REPLAY_TTL_MS);
    expect(await guard.firstUse('key_1', 'digest', Date.now())).toBe(true);
  });
});

async function connectedRedis(): Promise<SharedState> {
  const state = new RedisState({ url: REDIS_URL, prefix: `t:${randomBytes(6).toString('hex')}:` });
  for (let i = 0; i < 100 && !(await state.ping()); i++) await new Promise((r) => setTimeout(r, 20));
  return state;
}

describe.each([
  ['memory', async (): Promise<SharedState> => new MemoryState()],
  ...(redisUp ? [['redis', connectedRedis] as const] : []),
] as const)('ReplayGuard on %s', (_name, make) => {
  it('accepts the first use only', async () => {
    const state = await make();
    opened.push(state);
    const guard = new ReplayGuard(state);
    expect(await guard.firstUse('key_a', 'd1', Date.now())).toBe(true);
    expect(await guard.firstUse('key_a', 'd1', Date.now())).toBe(false);
    expect(await guard.firstUse('key_a', 'd2', Date.now())).toBe(true);
    expect(await guard.firstUse('key_b', 'd1', Date.now())).toBe(true);
  });

  it('learns on the first request after the memory was lost that it holds nothing from before', async () => {
    const state = await make();
    opened.push(state);
    const began = Date.now() - 10_000;
    await ReplayGuard.heldSince(state, began);
    const guard = new ReplayGuard(state, began, began);
    const signedAt = Date.now() - 2_000;
    expect(guard.covers(signedAt)).toBe(true);
    expect(await guard.firstUse('key_l', 'd1', Date.now())).toBe(true);
    expect(guard.covers(signedAt)).toBe(true);
    // Lost: the marker goes with everything else (for Redis, every key of this instance).
    for (const k of await state.keys('')) await state.del(k);
    const now = Date.now();
    // The copy meets an empty memory (Redis) and is "first" again: the guard now knows it cannot vouch for it.
    const again = await guard.firstUse('key_l', 'd1', now);
    if (state.kind === 'redis') expect(again).toBe(true);
    expect(guard.covers(signedAt)).toBe(false);
    expect(guard.covers(now + RECV_WINDOW.futureToleranceMs)).toBe(true);
    // Another process's guard learns it from the marker on its next request, whatever its id.
    const other = new ReplayGuard(state, began, began);
    await other.firstUse('key_m', 'd9', now + 5);
    expect(other.covers(signedAt)).toBe(false);
  });

  it('the security sync finding the loss later keeps the time the first request found it, unless the marker predates the loss', async () => {
    const state = await make();
    opened.push(state);
    const began = Date.now() - 60_000;
    await ReplayGuard.heldSince(state, began);
    const guard = new ReplayGuard(state, began, began);
    const intactAt = Date.now() - 10_000; // the sync's previous pass: the memory was whole
    for (const k of await state.keys('')) await state.del(k);
    const lostFoundAt = Date.now() - 5_000; // the first signed request after the loss
    await guard.firstUse('key_s', 'd1', lostFoundAt);
    const signedAfter = lostFoundAt + RECV_WINDOW.futureToleranceMs + 1;
    expect(guard.covers(signedAfter)).toBe(true);
    // The sync pass comes later: requests signed since the memory began again stay acceptable.
    await guard.lostBefore(Date.now(), intactAt);
    expect(guard.covers(signedAfter)).toBe(true);
    expect(guard.covers(lostFoundAt)).toBe(false);
    // A marker older than the last intact pass (a restore from a snapshot brought it back) is no
    // evidence: the memory is taken to begin at the pass that found the loss.
    const other = new ReplayGuard(state, began, began);
    await state.set('replay:held', String(intactAt - 1_000));
    const foundAt = Date.now();
    await other.lostBefore(foundAt, intactAt);
    expect(other.covers(signedAfter)).toBe(false);
    expect(other.covers(foundAt + RECV_WINDOW.futureToleranceMs)).toBe(true);
    expect(await state.get('replay:held')).toBe(String(foundAt));
  });

  it('accepts exactly one of 50 concurrent copies', async () => {
    const state = await make();
    opened.push(state);
    const guard = new ReplayGuard(state);
    const results = await Promise.all(Array.from({ length: 50 }, () => guard.firstUse('key_c', 'same', Date.now())));
    expect(results.filter(Boolean)).toHaveLength(1);
  });
});
