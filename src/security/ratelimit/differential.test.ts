import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_URL, serviceAvailable } from '../../../test/support/services.js';
import { ManualClock, systemClock } from '../../lib/clock.js';
import { MemoryState } from '../../state/memory.js';
import type { SharedState } from '../../state/port.js';
import { RedisState } from '../../state/redis.js';
import { SecurityEvents } from '../events/index.js';
import { RateLimiter, type LimitDecision } from './limiter.js';
import { RateLimitMetrics } from './metrics.js';
import type { PenaltyRules } from './penalties.js';
import { categoryPolicy, DEFAULT_LIMITS, type LimitTarget } from './policies.js';

/**
 * The limiter on MemoryState and on RedisState decides alike for the same sequence: windows on one
 * manual clock (the caller's), penalty expiries on real time in both (as Redis's always are), so
 * that only Redis's own clock separates them (a few ms of PTTL).
 */
const redisUp = await serviceAvailable('redis');
const prefix = `t:rld:${randomBytes(4).toString('hex')}:`;

const RULES: PenaltyRules = { penaltyBaseMs: 1000, penaltyMaxMs: 60_000, penaltyGraceMs: 0, strikeWindowMs: 60_000, suspendAfterStrikes: 6, abuseFactor: 10, suspensionMs: 300_000 };

function limiterOn(state: SharedState, clock: ManualClock, rules: PenaltyRules = RULES): RateLimiter {
  return new RateLimiter({
    state,
    fallback: new MemoryState(systemClock),
    clock,
    rules,
    events: new SecurityEvents(),
    metrics: new RateLimitMetrics(new Registry()),
    log: pino({ level: 'silent' }),
    timeSource: 'caller',
  });
}

describe.runIf(redisUp)('RateLimiter on MemoryState and RedisState', () => {
  let redis: RedisState;
  beforeAll(async () => {
    redis = new RedisState({ url: REDIS_URL, prefix });
    await redis.whenReady();
  });
  afterAll(() => redis.close());

  const same = (a: LimitDecision, b: LimitDecision) => {
    expect({ outcome: b.outcome, remaining: b.remaining, local: b.local }).toEqual({ outcome: a.outcome, remaining: a.remaining, local: a.local });
    // Penalty expiries are read back on two clocks a few ms apart; windows are exact.
    expect(Math.abs(a.retryAfterMs - b.retryAfterMs)).toBeLessThanOrEqual(100);
    expect(Math.abs(a.nextQuotaMs - b.nextQuotaMs)).toBeLessThanOrEqual(100);
  };

  it('decides identically for the same sequence (bursts, gaps, steps back, limit changes)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: -300, max: 400 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })), { minLength: 1, maxLength: 30 }),
        async (steps) => {
          const memory = new MemoryState(systemClock);
          const clock = new ManualClock(Date.now());
          const [a, b] = [limiterOn(memory, clock), limiterOn(redis, clock)];
          const subject = `a:acc_${randomBytes(5).toString('hex')}`;
          try {
            for (const [gap, burst, limit] of steps) {
              clock.advance(gap);
              const target: LimitTarget = { policy: { ...categoryPolicy('account', DEFAULT_LIMITS), limit }, subject };
              for (let i = 0; i < burst; i++) same(await a.hit(target), await b.hit(target));
            }
          } finally {
            await memory.close();
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('after the clock steps back an hour, a client refused on a full window waits at most one window more, not the hour', async () => {
    const memory = new MemoryState(systemClock);
    const clock = new ManualClock(Date.now());
    // A long grace period: every refusal here is one strike, so no cool-down (on real time) interferes.
    const rules = { ...RULES, penaltyGraceMs: 60_000 };
    const [a, b] = [limiterOn(memory, clock, rules), limiterOn(redis, clock, rules)];
    const target: LimitTarget = { policy: categoryPolicy('account', DEFAULT_LIMITS), subject: `a:acc_${randomBytes(5).toString('hex')}` };
    const { limit, windowMs } = target.policy;
    try {
      for (let i = 0; i < limit; i++) expect([(await a.hit(target)).outcome, (await b.hit(target)).outcome]).toEqual(['allowed', 'allowed']);
      expect([(await a.hit(target)).outcome, (await b.hit(target)).outcome]).toEqual(['limited', 'limited']);
      // NTP steps the clock back an hour. The first decision after it cannot tell how long before
      // the step the hits were: it counts them as just made, so the client waits one window more.
      clock.advance(-3_600_000 + 10);
      const [ra, rb] = [await a.hit(target), await b.hit(target)];
      same(ra, rb);
      expect(ra.outcome).toBe('limited');
      expect(ra.retryAfterMs).toBeLessThanOrEqual(windowMs);
      clock.advance(ra.retryAfterMs);
      const [da, db] = [await a.hit(target), await b.hit(target)];
      same(da, db);
      expect(da.outcome).toBe('allowed');
    } finally {
      await memory.close();
    }
  });
});
