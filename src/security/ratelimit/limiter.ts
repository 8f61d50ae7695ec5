import type { Logger } from 'pino';
import { anonymizeSubject } from '../../audit/anonymize.js';
import type { Clock } from '../../lib/clock.js';
import { StateUnavailableError, type SharedState, type WindowDecision } from '../../state/port.js';
import type { SecurityEvents } from '../events/index.js';
import type { RateLimitMetrics } from './metrics.js';
import { judge, type PenaltyRules } from './penalties.js';
import type { LimitTarget } from './policies.js';

export interface LimitDecision {
  outcome: 'allowed' | 'limited' | 'suspended';
  target: LimitTarget;
  /** Quota left in the window after this request. */
  remaining: number;
  /** Ms until more quota is available (the RateLimit `t`); on a refusal, the Retry-After. */
  nextQuotaMs: number;
  /** Ms before a request can be admitted (0 when allowed). */
  retryAfterMs: number;
  /** Decided by the in-process fallback because shared state was unavailable. */
  local: boolean;
}

export interface RateLimiterDeps {
  state: SharedState;
  /** In-process limiter for fail-open policies while shared state is unavailable. */
  fallback: SharedState;
  clock: Clock;
  rules: PenaltyRules;
  events: SecurityEvents;
  metrics: RateLimitMetrics;
  log: Logger;
  /**
   * 'state': windows run on the shared state's own clock (Redis TIME: one clock for every
   * process). 'caller': on `clock` (tests with a manual clock).
   */
  timeSource: 'state' | 'caller';
}

/** Shared-state keys of one (policy, subject); the hash tag keeps them in one Redis Cluster slot. */
function keysFor(base: string) {
  /** Present while suspended; checked before the penalty hold. */
  const suspended = `${base}:s`;
  /** Present while a cool-down is in force; value `p:<strikes>`. */
  const cooldown = `${base}:h`;
  return {
    base,
    window: `${base}:w`,
    suspended,
    cooldown,
    strikes: `${base}:k`,
    refused: `${base}:r`,
    grace: `${base}:g`,
    /** The window's hold keys, in the order they are checked. */
    hold: { holdKeys: [suspended, cooldown] },
  };
}
type LimitKeys = ReturnType<typeof keysFor>;

/** Keys of recently seen (policy, subject) pairs, built once (and hashed once as map keys) rather than per request. */
const keyCache = new Map<string, LimitKeys>();
function keysOf(target: LimitTarget): LimitKeys {
  const base = `rl:{${target.policy.name}:${target.subject}}`;
  let keys = keyCache.get(base);
  if (keys === undefined) {
    if (keyCache.size >= 50_000) keyCache.clear();
    keys = keysFor(base);
    keyCache.set(base, keys);
  }
  return keys;
}

/**
 * The limiter: one sliding-window decision per request (one round trip, the cool-down and
 * suspension checked in the same script), penalty bookkeeping only on refusals.
 *
 * Shared state unavailable: fail-closed policies (trading, account, tokens) throw
 * StateUnavailableError at once (503), others decide on the in-process fallback; every request
 * tries shared state first, so the limiter recovers by itself when it returns.
 */
export class RateLimiter {
  /** Suspensions this process has seen: refused without any I/O until they end. */
  private readonly suspendedUntil = new Map<string, number>();
  constructor(private readonly deps: RateLimiterDeps) {}

  async hit(target: LimitTarget, context: { ip?: string; requestId?: string } = {}): Promise<LimitDecision> {
    const { policy } = target;
    const keys = keysOf(target);
    const now = this.deps.clock.now();
    const until = this.suspendedUntil.get(keys.base);
    if (until !== undefined) {
      // Further off than a whole suspension: this process's clock stepped back since it was
      // remembered. Shared state (Redis ends it on its own clock) decides again.
      if (until > now && until - now <= this.deps.rules.suspensionMs) return this.record(this.refusal('suspended', target, until - now, false));
      this.suspendedUntil.delete(keys.base);
    }

    let state = this.deps.state;
    let local = false;
    let d: WindowDecision;
    try {
      d = await this.windowHit(state, target, keys);
    } catch (err) {
      if (!(err instanceof StateUnavailableError) || policy.failClosed) {
        this.deps.metrics.decisions.inc([policy.name, 'unavailable']);
        throw err;
      }
      state = this.deps.fallback;
      local = true;
      this.deps.metrics.fallback.inc({ category: policy.name });
      d = await this.windowHit(state, target, keys);
    }

    if (d.allowed) {
      return this.record({
        outcome: 'allowed',
        target,
        remaining: Math.max(0, policy.limit - d.count),
        nextQuotaMs: d.count >= policy.limit ? d.retryAfterMs : d.nextFreeMs,
        retryAfterMs: 0,
        local,
      });
    }
    if (d.held?.key === keys.suspended) {
      this.remember(keys.base, now + d.retryAfterMs);
      return this.record(this.refusal('suspended', target, d.retryAfterMs, local));
    }
    try {
      return this.record(await this.violation(state, target, keys, d, now, local, context));
    } catch (err) {
      if (!(err instanceof StateUnavailableError)) throw err;
      if (policy.failClosed) {
        // Refused as unavailable, as when the window itself could not be read.
        this.deps.metrics.decisions.inc([policy.name, 'unavailable']);
        throw err;
      }
      // Shared state went away between the two steps: refuse on the window alone, decided here
      // without shared state, so counted as a local fallback like one decided on the fallback.
      if (!local) this.deps.metrics.fallback.inc({ category: policy.name });
      return this.record(this.refusal('limited', target, d.retryAfterMs, true));
    }
  }

  private windowHit(state: SharedState, target: LimitTarget, keys: LimitKeys): Promise<WindowDecision> {
    const now = this.deps.timeSource === 'caller' ? this.deps.clock.now() : undefined;
    return state.slidingWindowHit(keys.window, target.policy.limit, target.policy.windowMs, now, keys.hold);
  }

  private async violation(
    state: SharedState,
    target: LimitTarget,
    keys: LimitKeys,
    d: WindowDecision,
    now: number,
    local: boolean,
    context: { ip?: string; requestId?: string },
  ): Promise<LimitDecision> {
    const { rules } = this.deps;
    const [refused, counted] = await Promise.all([
      state.incr(keys.refused, 1, rules.strikeWindowMs),
      rules.penaltyGraceMs === 0 ? Promise.resolve(true) : state.setIfAbsent(keys.grace, '1', rules.penaltyGraceMs),
    ]);
    const strikes = Math.max(1, await state.incr(keys.strikes, counted ? 1 : 0, rules.strikeWindowMs));
    const verdict = judge({ strikes, counted, refused, limit: target.policy.limit, waitMs: d.retryAfterMs }, rules);
    if (verdict.kind === 'suspended') {
      const first = await state.setIfAbsent(keys.suspended, String(now), rules.suspensionMs);
      const leftMs = first ? rules.suspensionMs : ((await state.ttl(keys.suspended)) ?? rules.suspensionMs);
      const retryAfterMs = leftMs > 0 ? leftMs : rules.suspensionMs;
      if (first) {
        this.deps.metrics.suspensions.inc({ category: target.policy.name });
        this.deps.events.emit({
          type: 'ratelimit.suspended',
          at: now,
          category: target.policy.name,
          subject: target.subject,
          untilMs: now + retryAfterMs,
          accountId: target.accountId,
          ip: context.ip,
          requestId: context.requestId,
        });
        // The process log names the client's network, never its address (the encrypted audit
        // trail has the event above in full).
        this.deps.log.warn({ category: target.policy.name, subject: anonymizeSubject(target.subject), strikes, refused, seconds: retryAfterMs / 1000 }, 'rate limit: client suspended for abuse');
      }
      this.remember(keys.base, now + retryAfterMs);
      return this.refusal('suspended', target, retryAfterMs, local);
    }
    if (verdict.holdMs > 0) {
      // The strikes are kept until a strike window has passed after this cool-down ends: a client
      // that waits out each cool-down and then overruns again keeps climbing towards suspension
      // (with a window from the first strike alone, the doubling cool-downs outlast it by the
      // seventh strike and the count started over).
      // holdAtLeast, not set: another process refusing the same client at the same moment may have
      // counted the next strike already; writing our count back would lose it, and our shorter
      // cool-down would replace its longer one. The increment above is the only writer of the count.
      await Promise.all([state.holdAtLeast(keys.cooldown, `p:${strikes}`, verdict.holdMs), state.holdAtLeast(keys.strikes, String(strikes), verdict.holdMs + rules.strikeWindowMs)]);
    }
    return this.refusal('limited', target, verdict.retryAfterMs, local);
  }

  private refusal(outcome: 'limited' | 'suspended', target: LimitTarget, retryAfterMs: number, local: boolean): LimitDecision {
    return { outcome, target, remaining: 0, nextQuotaMs: retryAfterMs, retryAfterMs, local };
  }

  private record(decision: LimitDecision): LimitDecision {
    this.deps.metrics.decisions.inc([decision.target.policy.name, decision.outcome]);
    return decision;
  }

  private remember(base: string, until: number): void {
    if (this.suspendedUntil.size >= 10_000) {
      const now = this.deps.clock.now();
      for (const [k, u] of this.suspendedUntil) if (u <= now) this.suspendedUntil.delete(k);
      if (this.suspendedUntil.size >= 10_000) return; // under a flood of distinct subjects, shared state still answers
    }
    this.suspendedUntil.set(base, until);
  }
}
