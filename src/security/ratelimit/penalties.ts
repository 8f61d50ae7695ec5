import type { RateLimitConfig } from '../../config/index.js';

/**
 * Backoff and suspension rules. Pure: the limiter feeds them counts kept in shared state.
 *
 * A strike is a refused request, counted at most once per grace period (requests a client had
 * already sent when its first refusal arrived are not held against it).
 * - 1st strike: no penalty beyond the window's own wait.
 * - each further strike within the strike window: a cool-down of base, 2·base, 4·base … (capped);
 *   strikes are forgotten once a strike window has passed, after the last cool-down ended, without
 *   a new one;
 *   every request sent during a cool-down is refused and, after the grace period, is a new strike,
 *   so a client that keeps sending doubles its own cool-down.
 * - suspension (`temporarily_suspended`, a fixed period): after `suspendAfterStrikes` strikes
 *   (hammering through penalties), or when refusals within the strike window reach
 *   `abuseFactor` × the limit (sustained traffic far above the limit).
 *
 * Clock steps: cool-downs, suspensions, strike and refusal counts are shared-state keys with an
 * expiry, i.e. "until T" on the state's own clock (Redis keeps an absolute expiry time; MemoryState
 * the same). After that clock steps back by D, a penalty stamped before the step stays until T
 * (up to D longer in real time) in both implementations alike. This is deliberate: unlike the
 * sliding window (which moves its log back, see SharedState.slidingWindowHit), a penalty is a
 * bounded, rare state, and shortening it on a step could not be told apart from a forward skew.
 */
export type PenaltyRules = Pick<RateLimitConfig, 'penaltyBaseMs' | 'penaltyMaxMs' | 'penaltyGraceMs' | 'strikeWindowMs' | 'suspendAfterStrikes' | 'abuseFactor' | 'suspensionMs'>;

export function cooldownMs(strikes: number, rules: PenaltyRules): number {
  if (strikes <= 1) return 0;
  // 2^(strikes-2) overflows to Infinity long before it matters; the cap applies anyway.
  return Math.min(rules.penaltyMaxMs, rules.penaltyBaseMs * 2 ** Math.min(strikes - 2, 40));
}

export interface Violation {
  /** Strikes in the strike window, including this refusal if it counted. */
  strikes: number;
  /** Whether this refusal counted as a new strike (outside the grace period of the previous one). */
  counted: boolean;
  /** Refusals in the strike window, including this one. */
  refused: number;
  limit: number;
  /** What the window or the cool-down in force already demands, in ms. */
  waitMs: number;
}

export type Verdict =
  | { kind: 'limited'; retryAfterMs: number; /** New cool-down to put in force (0: none). */ holdMs: number }
  | { kind: 'suspended'; retryAfterMs: number };

export function judge(v: Violation, rules: PenaltyRules): Verdict {
  if (v.strikes >= rules.suspendAfterStrikes || v.refused >= rules.abuseFactor * v.limit) {
    return { kind: 'suspended', retryAfterMs: rules.suspensionMs };
  }
  const holdMs = v.counted ? cooldownMs(v.strikes, rules) : 0;
  return { kind: 'limited', retryAfterMs: Math.max(v.waitMs, holdMs, 1), holdMs };
}
