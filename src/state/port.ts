/**
 * The shared-state port: what several server processes must agree on (limits, replay memory,
 * revocations, halts, IP blocks). `MemoryState` serves the embedded default, `RedisState` the
 * scale-out; both pass one contract suite (state/contract.test.ts).
 *
 * Every method either answers or rejects quickly with StateUnavailableError: nothing waits in an
 * offline queue. Callers making security decisions treat a rejection as "refuse" (fail closed).
 */
export interface SharedState {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<string | null>;
  getMany(keys: readonly string[]): Promise<(string | null)[]>;
  /** Sets a value, with an expiry when `ttlMs` is given. */
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Sets only when absent; true when this call set it. Atomic across processes. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Reads and deletes in one atomic step (single-use values such as nonces). */
  take(key: string): Promise<string | null>;
  del(key: string): Promise<void>;
  /** Atomically adds `by` and returns the new value; the expiry is set when the counter is created. */
  incr(key: string, by: number, ttlMs: number): Promise<number>;
  /** Remaining time to live in ms; null when absent, -1 when it has no expiry. */
  ttl(key: string): Promise<number | null>;
  /** Keys (without the instance prefix) starting with `prefix`; for small admin listings only. */
  keys(prefix: string): Promise<string[]>;
  /**
   * Sliding-window log admission, atomic across processes: admits when fewer than `limit` hits lie
   * in (now - windowMs, now], recording the hit; otherwise refuses and tells when the oldest hit in
   * the window leaves it.
   */
  slidingWindowHit(key: string, limit: number, windowMs: number, now: number): Promise<WindowDecision>;
  publish(channel: string, message: string): Promise<void>;
  /** Handler called for each message on `channel`; returns an unsubscribe function. */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export interface WindowDecision {
  allowed: boolean;
  /** Hits in the window after this decision. */
  count: number;
  /** Ms until one more hit would be admitted (0 when allowed now and room remains). */
  retryAfterMs: number;
  /** Ms until the window holds no hit. */
  resetMs: number;
}

export class StateUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StateUnavailableError';
  }
}
