import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock.js';
import { serviceAvailable, REDIS_URL } from '../../test/support/services.js';
import { MemoryState } from './memory.js';
import { StateUnavailableError, type SharedState, type WindowDecision } from './port.js';
import { RedisState } from './redis.js';

/**
 * Contract of `slidingWindowHit`, run against both implementations: exact sliding-window-log
 * admission (no interval of the window's length admits more than the limit; a caller under its
 * limit is never refused), monotonic time per key, hold keys, and atomicity under concurrency.
 */

const redisUp = await serviceAvailable('redis');
const prefix = `t:sw:${randomBytes(4).toString('hex')}:`;

interface Impl {
  name: string;
  make(): SharedState;
}

const impls: Impl[] = [
  { name: 'MemoryState', make: () => new MemoryState(new ManualClock()) },
  ...(redisUp ? [{ name: 'RedisState', make: () => new RedisState({ url: REDIS_URL, prefix }) }] : []),
];

async function ready(state: SharedState): Promise<SharedState> {
  if (state instanceof RedisState) await state.whenReady();
  return state;
}

let keySeq = 0;
const freshKey = () => `sw:${Date.now()}:${++keySeq}:${randomBytes(3).toString('hex')}`;

/** Largest number of times falling in any half-open interval [t, t + windowMs). */
export function maxInAnyWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

describe.each(impls)('slidingWindowHit on $name', ({ make }) => {
  let state: SharedState;
  beforeAll(async () => {
    state = await ready(make());
  });
  afterAll(() => state.close());

  it('admits up to the limit in a window, then refuses until the oldest hit leaves', async () => {
    const key = freshKey();
    const t0 = 1_000_000;
    for (let i = 0; i < 3; i++) {
      const d = await state.slidingWindowHit(key, 3, 1000, t0 + i * 100);
      expect(d).toMatchObject({ allowed: true, count: i + 1, at: t0 + i * 100 });
      expect(d.nextFreeMs).toBe(t0 + 1000 - (t0 + i * 100));
    }
    const refused = await state.slidingWindowHit(key, 3, 1000, t0 + 250);
    expect(refused).toMatchObject({ allowed: false, count: 3, retryAfterMs: 750 });
    // One ms before the oldest hit leaves: still full. At t0 + 1000 it has left (half-open window).
    expect((await state.slidingWindowHit(key, 3, 1000, t0 + 999)).allowed).toBe(false);
    const again = await state.slidingWindowHit(key, 3, 1000, t0 + 1000);
    expect(again).toMatchObject({ allowed: true, count: 3, retryAfterMs: 100 });
  });

  it('does not record refused hits: a client that waits is admitted at once', async () => {
    const key = freshKey();
    await state.slidingWindowHit(key, 1, 1000, 5000);
    for (let t = 5001; t < 6000; t += 37) expect((await state.slidingWindowHit(key, 1, 1000, t)).allowed).toBe(false);
    expect((await state.slidingWindowHit(key, 1, 1000, 6000)).allowed).toBe(true);
  });

  it('never lets time run backwards for a key (a late or skewed caller cannot reopen the window)', async () => {
    const key = freshKey();
    expect((await state.slidingWindowHit(key, 2, 1000, 10_000)).allowed).toBe(true);
    expect((await state.slidingWindowHit(key, 2, 1000, 10_999)).allowed).toBe(true);
    // Without the guard this call would see only the 10_000 hit in (9_500, 10_500] and admit,
    // putting three admitted hits inside [10_000, 11_000).
    const late = await state.slidingWindowHit(key, 2, 1000, 10_500);
    expect(late.allowed).toBe(false);
    // Less than a window late: decided at the newest hit's time, the log left where it is (moving
    // it back would let its hits leave that much early, admitting more than the limit in a window).
    expect(late).toMatchObject({ at: 10_999, count: 2, retryAfterMs: 1, resetMs: 1000 });
    expect((await state.slidingWindowHit(key, 2, 1000, 10_600)).allowed).toBe(false);
  });

  it('after the clock steps back, a full window opens again within windowMs, not once the clock catches up', async () => {
    const key = freshKey();
    const t0 = 3_600_000_000;
    for (let i = 0; i < 3; i++) expect((await state.slidingWindowHit(key, 3, 1000, t0 + i * 100)).allowed).toBe(true);
    // The clock steps back an hour (an NTP correction) just after the last hit.
    const back = t0 + 200 - 3_600_000;
    expect(await state.slidingWindowHit(key, 3, 1000, back)).toMatchObject({ allowed: false, retryAfterMs: 800 });
    expect((await state.slidingWindowHit(key, 3, 1000, back + 799)).allowed).toBe(false);
    expect((await state.slidingWindowHit(key, 3, 1000, back + 800)).allowed).toBe(true);
    // The hits keep their spacing on the new clock: the next one leaves 100 ms later.
    expect((await state.slidingWindowHit(key, 3, 1000, back + 899)).allowed).toBe(false);
    expect((await state.slidingWindowHit(key, 3, 1000, back + 900)).allowed).toBe(true);
  });

  it('after the limit is lowered, waits until enough hits have left', async () => {
    const key = freshKey();
    for (let i = 0; i < 5; i++) await state.slidingWindowHit(key, 5, 1000, 20_000 + i * 10);
    const d = await state.slidingWindowHit(key, 2, 1000, 20_100);
    // Five hits at +0..+40; to hold fewer than two, the four oldest must leave: the one at +30.
    expect(d).toMatchObject({ allowed: false, count: 5, retryAfterMs: 20_030 + 1000 - 20_100 });
  });

  it('refuses without recording while a hold key exists, and names it', async () => {
    const key = freshKey();
    const hold = `${key}:hold`;
    const other = `${key}:other`;
    await state.slidingWindowHit(key, 5, 1000, 30_000);
    await state.set(hold, 'p:3', 60_000);
    const held = await state.slidingWindowHit(key, 5, 1000, 30_010, { holdKeys: [other, hold] });
    expect(held).toMatchObject({ allowed: false, count: 1, held: { key: hold, value: 'p:3' } });
    expect(held.retryAfterMs).toBeGreaterThan(0);
    expect(held.retryAfterMs).toBeLessThanOrEqual(60_000);
    await state.del(hold);
    const after = await state.slidingWindowHit(key, 5, 1000, 30_020, { holdKeys: [other, hold] });
    expect(after).toMatchObject({ allowed: true, count: 2 });
    expect(after.held).toBeUndefined();
  });

  it('is atomic: many concurrent hits at one instant admit exactly the limit', async () => {
    const key = freshKey();
    const decisions = await Promise.all(Array.from({ length: 120 }, () => state.slidingWindowHit(key, 50, 1000, 40_000)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(50);
  });

  it('property: exact sliding window for any sequence of hits', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom(100, 1000),
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 60 }),
        async (limit, windowMs, gaps) => {
          const key = freshKey();
          let t = 1_000_000;
          const admitted: number[] = [];
          for (const gap of gaps) {
            t += gap;
            const d = await state.slidingWindowHit(key, limit, windowMs, t);
            const inWindow = admitted.filter((a) => a > t - windowMs).length;
            // Admitted exactly when fewer than `limit` admitted hits lie in (t - window, t].
            expect(d.allowed).toBe(inWindow < limit);
            if (d.allowed) admitted.push(t);
            expect(d.count).toBe(admitted.filter((a) => a > t - windowMs).length);
          }
          expect(maxInAnyWindow(admitted, windowMs)).toBeLessThanOrEqual(limit);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe.runIf(redisUp)('slidingWindowHit across processes on Redis', () => {
  const clients: RedisState[] = [];
  afterAll(() => Promise.all(clients.map((c) => c.close())));
  const client = async () => {
    const c = new RedisState({ url: REDIS_URL, prefix });
    clients.push(c);
    await c.whenReady();
    return c;
  };

  it('MemoryState and RedisState decide identically for the same sequence', async () => {
    const redis = await client();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.array(fc.tuple(fc.integer({ min: -50, max: 300 }), fc.integer({ min: 1, max: 6 })), { minLength: 1, maxLength: 40 }), async (limit0, steps) => {
        const memory = new MemoryState(new ManualClock());
        const key = freshKey();
        let t = 2_000_000;
        for (const [gap, limit] of [[0, limit0] as const, ...steps]) {
          t += gap; // negative gaps exercise the monotonic-time guard
          const [a, b] = await Promise.all([memory.slidingWindowHit(key, limit, 500, t), redis.slidingWindowHit(key, limit, 500, t)]);
          expect(b).toEqual(a);
        }
        await memory.close();
      }),
      { numRuns: 30 },
    );
  });

  it('on Redis time, several clients hammering one key never exceed the limit in any window', async () => {
    const [a, b, c] = await Promise.all([client(), client(), client()]);
    const key = freshKey();
    const limit = 20;
    const windowMs = 100;
    const admitted: number[] = [];
    const deadline = Date.now() + 400;
    await Promise.all(
      [a, b, c].map(async (s) => {
        while (Date.now() < deadline) {
          const batch: Promise<WindowDecision>[] = [];
          for (let i = 0; i < 10; i++) batch.push(s.slidingWindowHit(key, limit, windowMs));
          for (const d of await Promise.all(batch)) if (d.allowed) admitted.push(d.at);
        }
      }),
    );
    expect(admitted.length).toBeGreaterThanOrEqual(limit); // the window did admit traffic
    expect(maxInAnyWindow(admitted, windowMs)).toBeLessThanOrEqual(limit);
  });

  it('with a caller clock, a pause in real time does not drop hits the caller still counts', async () => {
    const s = await client();
    const key = freshKey();
    expect((await s.slidingWindowHit(key, 1, 100, 5_000)).allowed).toBe(true);
    await new Promise((r) => setTimeout(r, 150)); // longer than the window, on Redis's clock
    expect((await s.slidingWindowHit(key, 1, 100, 5_050)).allowed).toBe(false); // 50 ms later for the caller
  });

  it('without `now`, decides on Redis TIME (shared by all processes), not the caller clock', async () => {
    const s = await client();
    const before = Date.now();
    const d = await s.slidingWindowHit(freshKey(), 1, 1000);
    // Redis runs on this machine, so its clock is this machine's clock.
    expect(d.at).toBeGreaterThanOrEqual(before - 5);
    expect(d.at).toBeLessThanOrEqual(Date.now() + 5);
  });
});

describe('slidingWindowHit when Redis is unreachable', () => {
  it('rejects with StateUnavailableError instead of waiting', async () => {
    const dead = new RedisState({ url: 'redis://127.0.0.1:1', prefix });
    try {
      await expect(dead.slidingWindowHit('k', 1, 1000)).rejects.toBeInstanceOf(StateUnavailableError);
    } finally {
      await dead.close();
    }
  });
});
