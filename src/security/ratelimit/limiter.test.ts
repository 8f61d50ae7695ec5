import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_URL, serviceAvailable } from '../../../test/support/services.js';
import { ManualClock } from '../../lib/clock.js';
import { MemoryState } from '../../state/memory.js';
import { StateUnavailableError, type SharedState } from '../../state/port.js';
import { RedisState } from '../../state/redis.js';
import { SecurityEvents, type SecurityEvent } from '../events/index.js';
import { RateLimiter } from './limiter.js';
import { RateLimitMetrics } from './metrics.js';
import type { PenaltyRules } from './penalties.js';
import { categoryPolicy, DEFAULT_LIMITS, type LimitTarget } from './policies.js';

const redisUp = await serviceAvailable('redis');
const prefix = `t:rl:${randomBytes(4).toString('hex')}:`;

const RULES: PenaltyRules = {
  penaltyBaseMs: 1000,
  penaltyMaxMs: 60_000,
  penaltyGraceMs: 0,
  strikeWindowMs: 60_000,
  suspendAfterStrikes: 10,
  abuseFactor: 10,
  suspensionMs: 300_000,
};

function harness(state: SharedState, rules: Partial<PenaltyRules> = {}, clock = new ManualClock()) {
  const events: SecurityEvent[] = [];
  const bus = new SecurityEvents();
  bus.subscribe((e) => {
    events.push(e);
  });
  const registry = new Registry();
  const fallback = new MemoryState(clock);
  const limiter = new RateLimiter({
    state,
    fallback,
    clock,
    rules: { ...RULES, ...rules },
    events: bus,
    metrics: new RateLimitMetrics(registry),
    log: pino({ level: 'silent' }),
    timeSource: 'caller',
  });
  const counter = async (outcome: string, category = 'account') => (await registry.getSingleMetric('moondraft_ratelimit_decisions_total')!.get()).values.find((v) => v.labels.outcome === outcome && v.labels.category === category)?.value ?? 0;
  return { limiter, events, clock, counter, fallback, registry };
}

/** In-process shared state whose window answers but whose strike count (`incr`, the step after it) finds it gone. */
function failingAfterWindow(): SharedState {
  const live = new MemoryState(new ManualClock());
  return new Proxy(live, {
    get(obj, name, receiver) {
      if (name === 'incr') return () => Promise.reject(new StateUnavailableError('shared state unavailable'));
      const v = Reflect.get(obj, name, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(obj) : v;
    },
  });
}

const target = (category: 'account' | 'market' | 'trading' = 'account', limit?: number): LimitTarget => ({
  policy: { ...categoryPolicy(category, DEFAULT_LIMITS), ...(limit ? { limit } : {}) },
  subject: `a:acc_${randomBytes(5).toString('hex')}`,
  accountId: 'acc_x',
});

const backends: { name: string; make: () => Promise<SharedState> }[] = [
  { name: 'memory', make: async () => new MemoryState(new ManualClock()) },
  ...(redisUp
    ? [
        {
          name: 'redis',
          make: async () => {
            const s = new RedisState({ url: REDIS_URL, prefix });
            await s.whenReady();
            return s;
          },
        },
      ]
    : []),
];

describe.each(backends)('RateLimiter on $name', ({ make }) => {
  let state: SharedState;
  beforeAll(async () => {
    state = await make();
  });
  afterAll(() => state.close());

  it('admits up to the limit, reporting remaining quota, then limits', async () => {
    const { limiter, counter } = harness(state);
    const t = target();
    const first = await limiter.hit(t);
    expect(first).toMatchObject({ outcome: 'allowed', remaining: 24, retryAfterMs: 0, local: false });
    for (let i = 0; i < 24; i++) await limiter.hit(t);
    const refused = await limiter.hit(t);
    expect(refused.outcome).toBe('limited');
    expect(refused.remaining).toBe(0);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(1000);
    expect(await counter('allowed')).toBe(25);
    expect(await counter('limited')).toBe(1);
  });

  it('doubles the cool-down with each repeated violation, capped', async () => {
    const { limiter } = harness(state);
    const t = target('account', 2);
    await limiter.hit(t);
    await limiter.hit(t);
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) waits.push((await limiter.hit(t)).retryAfterMs);
    // strike 1: the window's own wait (≤ 1 s); then 1, 2, 4 … s, capped at 60 s.
    expect(waits[0]).toBeLessThanOrEqual(1000);
    expect(waits.slice(1)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
  });

  it('suspends after repeated violations, once, with a security event; other processes see it', async () => {
    const a = harness(state);
    const t = target('account', 2);
    await a.limiter.hit(t);
    await a.limiter.hit(t);
    const outcomes: string[] = [];
    for (let i = 0; i < 12; i++) outcomes.push((await a.limiter.hit(t)).outcome);
    expect(outcomes.slice(0, 9)).toEqual(Array(9).fill('limited'));
    expect(outcomes.slice(9)).toEqual(['suspended', 'suspended', 'suspended']);
    const suspended = a.events.filter((e) => e.type === 'ratelimit.suspended');
    expect(suspended).toHaveLength(1);
    expect(suspended[0]).toMatchObject({ category: 'account', subject: t.subject, accountId: 'acc_x' });
    expect(await a.counter('suspended')).toBe(3);

    const b = harness(state); // another process on the same shared state
    const there = await b.limiter.hit(t);
    expect(there.outcome).toBe('suspended');
    expect(there.retryAfterMs).toBeGreaterThan(290_000);
    expect(b.events).toHaveLength(0);
  });

  it('after this process\'s clock steps back, its memory of a suspension does not outlast what shared state says', async () => {
    // The process remembers a suspension "until T" on its own clock, to refuse without I/O. Shared
    // state (Redis: its own clock) ends it on time; a process clock stepped back by an hour kept
    // refusing for the hour, without asking.
    const clock = new ManualClock();
    const a = harness(state, {}, clock);
    const t = target('account', 2);
    for (let i = 0; i < 11; i++) await a.limiter.hit(t);
    expect((await a.limiter.hit(t)).outcome).toBe('suspended');
    // Shared state's suspension ends (on its own clock); this process's clock steps back an hour.
    const base = `rl:{${t.policy.name}:${t.subject}}`;
    for (const suffix of ['s', 'h', 'k', 'r']) await state.del(`${base}:${suffix}`);
    clock.advance(-3_600_000);
    expect((await a.limiter.hit(t)).outcome).not.toBe('suspended');
  });

  it('suspends sustained traffic far above the limit even when its refusals fall in one grace period', async () => {
    const { limiter, events } = harness(state, { penaltyGraceMs: 5000 });
    const t = target('account', 3);
    const outcomes: string[] = [];
    for (let i = 0; i < 3 + 30; i++) outcomes.push((await limiter.hit(t)).outcome);
    // Refusals 1..29 are one strike (grace); the 30th refusal reaches 10 × the limit.
    expect(outcomes.filter((o) => o === 'limited')).toHaveLength(29);
    expect(outcomes.at(-1)).toBe('suspended');
    expect(events.map((e) => e.type)).toEqual(['ratelimit.suspended']);
  });

  it('counts refusals inside the grace period as one strike (requests already in flight)', async () => {
    const { limiter } = harness(state, { penaltyGraceMs: 5000 });
    const t = target('account', 1);
    await limiter.hit(t);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) waits.push((await limiter.hit(t)).retryAfterMs);
    expect(Math.max(...waits)).toBeLessThanOrEqual(1000); // no cool-down: still the first strike
  });

  it('keeps separate windows per subject and per category', async () => {
    const { limiter } = harness(state);
    const t = target('account', 1);
    expect((await limiter.hit(t)).outcome).toBe('allowed');
    expect((await limiter.hit(t)).outcome).toBe('limited');
    expect((await limiter.hit({ ...t, policy: { ...t.policy, name: 'trading' } })).outcome).toBe('allowed');
    expect((await limiter.hit({ ...t, subject: `${t.subject}x` })).outcome).toBe('allowed');
  });
});

describe('RateLimiter penalties expire (manual clock)', () => {
  it('a cool-down ends, strikes are forgotten after the strike window, a suspension ends', async () => {
    const clock = new ManualClock();
    const state = new MemoryState(clock);
    const { limiter } = harness(state, {}, clock);
    const t = target('account', 2);
    await limiter.hit(t);
    await limiter.hit(t);
    await limiter.hit(t); // strike 1
    expect((await limiter.hit(t)).retryAfterMs).toBe(1000); // strike 2: 1 s cool-down
    expect((await limiter.hit(t)).retryAfterMs).toBe(2000); // strike 3 (sent during it): 2 s
    clock.advance(1999);
    expect((await limiter.hit(t)).outcome).toBe('limited'); // strike 4, 4 s
    clock.advance(4000);
    expect((await limiter.hit(t)).outcome).toBe('allowed'); // waited it out: admitted
    await limiter.hit(t);
    expect((await limiter.hit(t)).retryAfterMs).toBe(8000); // strike 5: escalation remembered
    clock.advance(8000 + 59_000);
    await limiter.hit(t);
    await limiter.hit(t);
    expect((await limiter.hit(t)).retryAfterMs).toBe(16_000); // strike 6: within the window after the cool-down
    clock.advance(16_000 + 61_000); // the strike window passes quietly after the cool-down
    await limiter.hit(t);
    await limiter.hit(t);
    const fresh = await limiter.hit(t);
    expect(fresh.retryAfterMs).toBeLessThanOrEqual(1000); // strike 1 again: no cool-down

    for (let i = 0; i < 12; i++) await limiter.hit(t);
    expect((await limiter.hit(t)).outcome).toBe('suspended');
    clock.advance(299_999);
    expect((await limiter.hit(t)).outcome).toBe('suspended');
    clock.advance(61_000); // suspension over (and the strikes behind it expired)
    expect((await limiter.hit(t)).outcome).toBe('allowed');
    await state.close();
  });
});

describe('RateLimiter escalation (manual clock)', () => {
  it('a client that waits out every cool-down and overruns again climbs to the cap, then suspension', async () => {
    // In-process state, whose expiries follow the manual clock (Redis's follow real time).
    const clock = new ManualClock();
    const state = new MemoryState(clock);
    const { limiter } = harness(state, {}, clock);
    const t = target('account', 2);
    const overrun = async () => {
      await limiter.hit(t);
      await limiter.hit(t);
      return limiter.hit(t);
    };
    const waits: number[] = [];
    for (let strike = 1; strike <= 9; strike++) {
      const refused = await overrun();
      expect(refused.outcome).toBe('limited');
      waits.push(refused.retryAfterMs);
      clock.advance(Math.max(refused.retryAfterMs, 1000)); // exactly what Retry-After said
    }
    expect(waits).toEqual([1000, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
    expect((await overrun()).outcome).toBe('suspended'); // strike 10
    await state.close();
  });
});

describe('RateLimiter when shared state is unavailable', () => {
  let dead: RedisState;
  beforeAll(() => {
    dead = new RedisState({ url: 'redis://127.0.0.1:1', prefix });
  });
  afterAll(() => dead.close());

  it('fails closed for trading, account and tokens', async () => {
    const { limiter, counter } = harness(dead);
    await expect(limiter.hit(target('trading'))).rejects.toBeInstanceOf(StateUnavailableError);
    await expect(limiter.hit(target('account'))).rejects.toBeInstanceOf(StateUnavailableError);
    expect(await counter('unavailable', 'trading')).toBe(1);
  });

  it('counts a fail-closed refusal as unavailable also when shared state goes away after the window was read', async () => {
    // The window answers; the strike count (the step after it) finds shared state gone.
    const failing = failingAfterWindow();
    const { limiter, counter } = harness(failing);
    const t = target('trading', 1);
    expect((await limiter.hit(t)).outcome).toBe('allowed');
    await expect(limiter.hit(t)).rejects.toBeInstanceOf(StateUnavailableError);
    expect(await counter('allowed', 'trading')).toBe(1);
    expect(await counter('unavailable', 'trading')).toBe(1);
  });

  it('counts a fail-open refusal decided without shared state, after the window was read, as a local fallback', async () => {
    // The window answers (and refuses); the strike count (the step after it) finds shared state gone.
    const failing = failingAfterWindow();
    const { limiter, counter, registry } = harness(failing);
    const fallbacks = async (category: string) => (await registry.getSingleMetric('moondraft_ratelimit_local_fallback_total')!.get()).values.find((v) => v.labels.category === category)?.value ?? 0;
    const t = target('market', 1);
    expect((await limiter.hit(t)).outcome).toBe('allowed');
    const refused = await limiter.hit(t);
    expect(refused).toMatchObject({ outcome: 'limited', local: true });
    expect(await counter('limited', 'market')).toBe(1);
    expect(await fallbacks('market')).toBe(1);
  });

  it('limits market data on the in-process fallback, exactly', async () => {
    const { limiter } = harness(dead);
    const t = target('market', 5);
    const outcomes: string[] = [];
    for (let i = 0; i < 7; i++) {
      const d = await limiter.hit(t);
      expect(d.local).toBe(true);
      outcomes.push(d.outcome);
    }
    expect(outcomes).toEqual(['allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'limited', 'limited']);
  });
});

describe.runIf(redisUp)('two limiters (two processes) on one Redis', () => {
  /** A process whose calls are late by `ms`, for the methods named. */
  const slow = (state: SharedState, ms: number, methods: (m: string) => boolean): SharedState =>
    new Proxy(state, {
      get(obj, name, receiver) {
        const v = Reflect.get(obj, name, receiver) as unknown;
        if (typeof v !== 'function') return v;
        const fn = v as (...args: unknown[]) => unknown;
        return methods(String(name)) ? async (...args: unknown[]) => (await new Promise((r) => setTimeout(r, ms)), fn.apply(obj, args)) : fn.bind(obj);
      },
    });

  it('refusing one client at the same moment, both record their strike and the longer cool-down stands', async () => {
    const [one, two] = [new RedisState({ url: REDIS_URL, prefix }), new RedisState({ url: REDIS_URL, prefix })];
    try {
      await Promise.all([one.whenReady(), two.whenReady()]);
      const clock = new ManualClock();
      // Process A is slow after its strike increment; process B's increment lands just after A's.
      const a = harness(slow(one, 60, (m) => m !== 'slidingWindowHit' && m !== 'incr'), {}, clock).limiter;
      const b = harness(slow(two, 15, (m) => m === 'incr'), {}, clock).limiter;
      const t = target('account', 2);
      expect((await a.hit(t)).outcome).toBe('allowed');
      expect((await a.hit(t)).outcome).toBe('allowed');
      expect((await a.hit(t)).outcome).toBe('limited'); // strike 1: no cool-down
      const both = await Promise.all([a.hit(t), b.hit(t)]);
      expect(both.map((d) => d.outcome)).toEqual(['limited', 'limited']);
      // Strikes 2 and 3: the cool-down in force is the third strike's (2 × base), not the second's.
      const base = `rl:{${t.policy.name}:${t.subject}}`;
      expect(await one.get(`${base}:k`)).toBe('3');
      expect(await one.ttl(`${base}:h`)).toBeGreaterThan(1500);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });
});
