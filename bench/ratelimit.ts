/**
 * Rate-limiter benchmark: decisions per second and the latency a decision adds, for the
 * in-process limiter (MemoryState) and the Redis limiter (one Lua round trip per decision), each
 * beside a trivial fixed-window counter measured in the same run on the same state (what the
 * exact sliding window and its penalty checks cost over the cheapest possible limiter).
 *
 * `npm run bench` runs `run()`; `node --import tsx bench/ratelimit.ts` prints the rows.
 * Redis: MOONDRAFT_TEST_REDIS_URL or redis://127.0.0.1:6379 (rows skipped when unreachable).
 */
import { reachable } from '../test/support/services.js';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { Registry } from 'prom-client';
import { systemClock } from '../src/lib/clock.js';
import { SecurityEvents } from '../src/security/events/index.js';
import { RateLimiter } from '../src/security/ratelimit/limiter.js';
import { RateLimitMetrics } from '../src/security/ratelimit/metrics.js';
import { categoryPolicy, DEFAULT_LIMITS, type LimitTarget } from '../src/security/ratelimit/policies.js';
import { MemoryState } from '../src/state/memory.js';
import type { SharedState } from '../src/state/port.js';
import { RedisState } from '../src/state/redis.js';
import type { BenchRow } from './types.js';

const REDIS_URL = process.env.MOONDRAFT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SUBJECTS = 10_000;
/**
 * Market-data limit (100 a second per subject): below a million decisions a second every subject
 * stays under it, so decisions admit, as in normal traffic. The row's note gives the share that did:
 * refused and suspended callers are cheaper, and must not flatter the figure.
 */
const target = (i: number): LimitTarget => ({ policy: categoryPolicy('market', DEFAULT_LIMITS), subject: `k:bench_${i % SUBJECTS}` });

function limiterOn(state: SharedState): RateLimiter {
  return new RateLimiter({
    state,
    fallback: new MemoryState(),
    clock: systemClock,
    rules: { penaltyBaseMs: 1000, penaltyMaxMs: 60_000, penaltyGraceMs: 250, strikeWindowMs: 60_000, suspendAfterStrikes: 10, abuseFactor: 10, suspensionMs: 300_000 },
    events: new SecurityEvents(),
    metrics: new RateLimitMetrics(new Registry()),
    log: pino({ level: 'silent' }),
    timeSource: 'state',
  });
}

/** The cheapest limiter there is: one counter per subject and whole second (admits up to 2× the limit across a boundary). */
function fixedWindow(state: SharedState) {
  return async (i: number) => {
    const second = Math.floor(Date.now() / 1000);
    return (await state.incr(`fw:${i % SUBJECTS}:${second}`, 1, 2000)) <= 100;
  };
}

async function throughput(decide: (i: number) => Promise<unknown>, inFlight: number, ms: number): Promise<number> {
  let i = 0;
  const end = performance.now() + ms;
  async function worker() {
    while (performance.now() < end) await decide(i++);
  }
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return i / ((performance.now() - start) / 1000);
}

async function latency(decide: (i: number) => Promise<unknown>, samples: number): Promise<{ p50: number; p99: number }> {
  const t: number[] = [];
  for (let i = 0; i < samples; i++) {
    const s = performance.now();
    await decide(i);
    t.push((performance.now() - s) * 1000);
  }
  t.sort((a, b) => a - b);
  return { p50: t[Math.floor(samples * 0.5)]!, p99: t[Math.floor(samples * 0.99)]! };
}

const round = (n: number) => Math.round(n * 10) / 10;

export async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];

  const memory = new MemoryState();
  const memLimiter = limiterOn(memory);
  const outcomes = { allowed: 0, all: 0 };
  const memDecide = async (i: number) => {
    const d = await memLimiter.hit(target(i));
    outcomes.all++;
    if (d.outcome === 'allowed') outcomes.allowed++;
    return d;
  };
  const memFixed = fixedWindow(memory);
  await throughput(memDecide, 1, 200); // warm-up
  await throughput(memFixed, 1, 200);
  outcomes.allowed = outcomes.all = 0;
  const memRate = await throughput(memDecide, 1, 1500);
  const admitted = (100 * outcomes.allowed) / outcomes.all;
  rows.push({
    name: 'in-process sliding-window limiter decisions/s',
    value: Math.round(memRate),
    unit: 'decisions/s',
    baseline: { name: 'in-process fixed-window counter', value: Math.round(await throughput(memFixed, 1, 1500)) },
    note: `${admitted.toFixed(1)}% of the decisions admitted${admitted < 95 ? ' (too few: subjects went over the limit, the figure is flattered)' : ''}`,
  });
  const memLat = await latency(memDecide, 20_000);
  const memFixedLat = await latency(memFixed, 20_000);
  rows.push({ name: 'in-process decision latency p50', value: round(memLat.p50), unit: 'µs', better: 'lower', baseline: { name: 'in-process fixed-window counter p50', value: round(memFixedLat.p50) } });
  await memory.close();

  if (!(await reachable(REDIS_URL))) {
    console.warn(`bench/ratelimit: Redis not reachable at ${REDIS_URL}; Redis rows skipped`);
    return rows;
  }
  const redis = new RedisState({ url: REDIS_URL, prefix: `bench:${randomBytes(4).toString('hex')}:` });
  await redis.whenReady();
  try {
    const redisLimiter = limiterOn(redis);
    const redisDecide = (i: number) => redisLimiter.hit(target(i));
    const redisFixed = fixedWindow(redis);
    await throughput(redisDecide, 64, 300); // warm-up, scripts loaded
    await throughput(redisFixed, 64, 300);
    for (const inFlight of [64, 256]) {
      rows.push({
        name: `Redis sliding-window limiter decisions/s (one process, ${inFlight} in flight)`,
        value: Math.round(await throughput(redisDecide, inFlight, 2000)),
        unit: 'decisions/s',
        baseline: { name: `Redis fixed-window counter (INCR, ${inFlight} in flight)`, value: Math.round(await throughput(redisFixed, inFlight, 2000)) },
      });
    }
    const lat = await latency(redisDecide, 3000);
    const fixedLat = await latency(redisFixed, 3000);
    rows.push({ name: 'Redis decision latency p50 (one at a time)', value: round(lat.p50), unit: 'µs', better: 'lower', baseline: { name: 'Redis fixed-window counter p50', value: round(fixedLat.p50) } });
    rows.push({ name: 'Redis decision latency p99 (one at a time)', value: round(lat.p99), unit: 'µs', better: 'lower', baseline: { name: 'Redis fixed-window counter p99', value: round(fixedLat.p99) } });
  } finally {
    await redis.close();
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const r of await run()) console.log(`${r.name}: ${r.value} ${r.unit}${r.baseline ? `  (baseline ${r.baseline.name}: ${r.baseline.value})` : ''}`);
}
