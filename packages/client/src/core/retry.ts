/** How the client retries. Every retry is signed afresh (new timestamp, new signature). */
export interface RetryOptions {
  /** Retries after the first attempt, for 429, 5xx and network failures together (default 3). */
  maxRetries?: number;
  /** First backoff for 5xx and network failures, doubled on each retry (default 250 ms). */
  baseDelayMs?: number;
  /** Backoff ceiling (default 8000 ms). */
  maxDelayMs?: number;
  /** Random extra wait added to a 429's Retry-After, up to this much (default 250 ms). */
  jitterMs?: number;
  /** A Retry-After longer than this is not waited for: the error is thrown with `retryAfterMs` (default 30 s). */
  maxRetryAfterMs?: number;
}

export type ResolvedRetry = Required<RetryOptions>;

export function resolveRetry(options: RetryOptions = {}): ResolvedRetry {
  const resolved = {
    maxRetries: options.maxRetries ?? 3,
    baseDelayMs: options.baseDelayMs ?? 250,
    maxDelayMs: options.maxDelayMs ?? 8000,
    jitterMs: options.jitterMs ?? 250,
    maxRetryAfterMs: options.maxRetryAfterMs ?? 30_000,
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isFinite(value) || value < 0) throw new TypeError(`retry.${name} must be a finite number ≥ 0`);
  }
  return resolved;
}

/** Exponential backoff with "equal jitter": half the step fixed, half random, so clients spread out. */
export function backoffDelay(retry: ResolvedRetry, retryIndex: number, random: () => number): number {
  const step = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** retryIndex);
  return Math.round(step / 2 + random() * (step / 2));
}

/** `Retry-After` as milliseconds: delta-seconds, or an HTTP date measured against `now` (the server's time as best known). */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  // An HTTP date has whole seconds: wait until the end of the second it names.
  return Number.isNaN(date) ? undefined : Math.max(0, date + 999 - now);
}

/** The default sleep; rejects when the caller's signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
