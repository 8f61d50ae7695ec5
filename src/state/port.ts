/**
 * The shared-state port: what several server processes must agree on (limits, replay memory,
 * revocations, halts, IP blocks). `MemoryState` serves the embedded default, `RedisState` the
 * scale-out; both pass one contract suite (state/contract.test.ts).
 *
 * Every method either answers or rejects quickly with StateUnavailableError: nothing waits in an
 * offline queue. Callers making security decisions treat a rejection as "refuse" (fail closed).
 *
 * Every `ttlMs` is rounded up to a whole ms, at least 1 (0 or less: gone after 1 ms, as Redis's
 * PX 1); one that is not a finite number rejects with a RangeError before anything is written (in
 * process it would never expire, in Redis it would be refused by the server).
 */
export interface SharedState {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<string | null>;
  getMany(keys: readonly string[]): Promise<(string | null)[]>;
  /** Sets a value, with an expiry when `ttlMs` is given. */
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Sets only when absent; true when this call set it. Atomic across processes. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /**
   * A once-only memory: records `id` in `space` for `ttlMs` and answers true, or answers false
   * while it is already recorded there. Atomic across processes. For many short-lived ids that are
   * never read back (the replay memory: one per signed request); unlike `setIfAbsent` there is no
   * value, so the in-process state keeps each id as its SHA-256, in generations dropped whole,
   * instead of a full key. In Redis it is `setIfAbsent` of the key `space:id` (so a space's name
   * holds no ':', or two spaces' ids could meet there: such a space, or an empty one, rejects with
   * a RangeError in both implementations).
   */
  firstSeen(space: string, id: string, ttlMs: number): Promise<boolean>;
  /**
   * `firstSeen`, in one atomic step with a read of the marker `heldKey`, whose value names since
   * when (epoch ms) the memory holds what was recorded. A marker that is absent (the state lost what
   * it held: Redis restarted empty, failed over, was flushed) is first set to `now`. Answers whether
   * `id` was first seen and the marker's value, so that the caller learns of a loss on the very
   * request that meets it (see security/replay).
   */
  firstSeenHeld(space: string, id: string, ttlMs: number, heldKey: string, now: number): Promise<{ first: boolean; heldSince: number }>;
  /** Reads and deletes in one atomic step (single-use values such as nonces). */
  take(key: string): Promise<string | null>;
  del(key: string): Promise<void>;
  /**
   * Sets `key` to the number `value` unless it already holds a larger one, atomically; the expiry is
   * renewed either way. For version flags written by racing announcements: the newest always wins.
   * The winner is kept as written (String(value)); a `value` that is not finite rejects (RangeError).
   */
  setMax(key: string, value: number, ttlMs: number): Promise<void>;
  /**
   * Atomically adds `by` and returns the new value; the expiry is set when the counter is created
   * (or when it has none), never renewed. `by` must be an integer (else RangeError); a value that
   * is not an integer (as Redis's INCRBY reads one) rejects with StateUnavailableError, unchanged,
   * as does a result beyond Number.MAX_SAFE_INTEGER either way (it could not be returned exactly).
   */
  incr(key: string, by: number, ttlMs: number): Promise<number>;
  /**
   * Makes `key` live at least `ttlMs` more, atomically: absent, it is set to `value` with that
   * expiry; present with a shorter expiry, only the expiry is extended (the value is kept); with a
   * longer expiry or none, it is left as it is. Racing writers never shorten one another's expiry
   * nor overwrite a value (penalty counters and cool-downs).
   */
  holdAtLeast(key: string, value: string, ttlMs: number): Promise<void>;
  /** Remaining time to live in ms; null when absent, -1 when it has no expiry. */
  ttl(key: string): Promise<number | null>;
  /**
   * Keys (without the instance prefix) starting with `prefix`. It walks the whole keyspace (replay
   * memory and limiter keys included): for rare, small admin listings and one-time backfills only;
   * lists read often are kept in an index set (indexAdd, indexLive).
   */
  keys(prefix: string): Promise<string[]>;
  /** Adds `member` to the index set `key` (no expiry). */
  indexAdd(key: string, member: string): Promise<void>;
  /** Removes `member` from the index set `key`. */
  indexRemove(key: string, member: string): Promise<void>;
  /**
   * The members of the index set `key` whose own key `prefix + member` exists. Members whose key is
   * gone (expired, deleted) are removed from the set in the same atomic step, so a member added
   * again meanwhile, with its key, is never lost.
   */
  indexLive(key: string, prefix: string): Promise<string[]>;
  /**
   * Sliding-window log admission, atomic across processes. A hit at time t is admitted when fewer
   * than `limit` admitted hits lie in (t - windowMs, t]; only admitted hits are recorded. Hence no
   * half-open interval of `windowMs` ever holds more than `limit` admitted hits, and a caller that
   * never sends more than `limit` per window is never refused (GCRA and fixed windows give up one
   * of the two). Time never runs backwards for a key: a decision time earlier than the key's newest
   * hit (a caller whose clock reading is a little behind) counts as that newest hit's time, so a
   * late caller cannot reopen the window. One more than `windowMs` earlier can only be a clock
   * stepped back: it first moves every hit in the log back by the difference, so the newest is at
   * the decision time (the same decision), and the window then runs on the clock as it now is. A
   * full window thus opens again at most `windowMs` after the first decision that meets the step,
   * not once the clock has caught up with hits stamped before it (an hour's NTP step, an hour
   * refused).
   *
   * `now` (epoch ms) is the decision time; omit it to use the state's own clock. RedisState then
   * reads Redis's TIME inside the script: one clock for every process, so process clock skew
   * cannot widen a window. Pass `now` only with a test clock.
   *
   * `holdKeys`: while any of these keys exists the hit is refused without being recorded, and the
   * decision names the key and its value (penalties and suspensions use this, in the same round trip).
   *
   * `limit` is a whole number >= 0; `windowMs` a finite number > 0, rounded up to a whole ms; `now`
   * is rounded down to a whole ms (as Redis's TIME is). Anything else rejects with a RangeError
   * before a hit is recorded (Redis replies carry whole numbers only, and PEXPIRE takes no fraction).
   */
  slidingWindowHit(key: string, limit: number, windowMs: number, now?: number, options?: WindowOptions): Promise<WindowDecision>;
  publish(channel: string, message: string): Promise<void>;
  /**
   * Handler called for each message on `channel`; returns an unsubscribe function. A handler that
   * throws is reported as a process warning; the other handlers still get the message.
   */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export interface WindowOptions {
  holdKeys?: readonly string[];
}

export interface WindowDecision {
  allowed: boolean;
  /** Admitted hits in the window after this decision. */
  count: number;
  /** Ms until one more hit would be admitted: 0 when room remains; when held, the hold's remaining time. */
  retryAfterMs: number;
  /** Ms until the oldest hit in the window leaves it, freeing quota (0 when the window is empty). */
  nextFreeMs: number;
  /** Ms until the window holds no hit. */
  resetMs: number;
  /** The decision time used (epoch ms, on the clock that decided). */
  at: number;
  /** Set when refused because a hold key exists. */
  held?: { key: string; value: string };
}

/** The expiry every implementation applies for `ttlMs` (see above): a whole ms, at least 1. */
export function expiryMs(ttlMs: number): number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs)) throw new RangeError(`shared state: ttlMs must be a finite number of ms, got ${String(ttlMs)}`);
  return Math.max(1, Math.ceil(ttlMs));
}

/** A firstSeen space: not empty and without ':' (see firstSeen). */
export function onceSpace(space: string): string {
  if (typeof space !== 'string' || space === '' || space.includes(':')) throw new RangeError(`shared state: a firstSeen space must be non-empty and hold no ':', got ${JSON.stringify(space)}`);
  return space;
}

/** The sliding-window arguments every implementation uses (see slidingWindowHit). */
export function windowArgs(limit: number, windowMs: number, now: number | undefined): { limit: number; windowMs: number; now: number | undefined } {
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`shared state: window limit must be a whole number >= 0, got ${String(limit)}`);
  if (typeof windowMs !== 'number' || !Number.isFinite(windowMs) || windowMs <= 0) throw new RangeError(`shared state: windowMs must be a finite number > 0, got ${String(windowMs)}`);
  if (now !== undefined && (typeof now !== 'number' || !Number.isFinite(now))) throw new RangeError(`shared state: window time must be a finite number of ms, got ${String(now)}`);
  return { limit, windowMs: Math.ceil(windowMs), now: now === undefined ? undefined : Math.floor(now) };
}

export class StateUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StateUnavailableError';
  }
}

/**
 * Gives `message` to each handler in turn. One that throws does not keep it from the others, nor
 * escape into the event loop (an uncaught exception ends the process): it becomes a warning.
 */
export function deliver(handlers: Iterable<(message: string) => void>, channel: string, message: string): void {
  for (const handler of handlers) {
    try {
      handler(message);
    } catch (err) {
      process.emitWarning(`a subscriber of ${channel} failed: ${err instanceof Error ? err.message : String(err)}`, 'MoondraftSubscriberWarning');
    }
  }
}
