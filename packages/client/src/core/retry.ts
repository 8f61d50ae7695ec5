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

/** The longest delay setTimeout (and AbortSignal.timeout) honours: beyond it they fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

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
    // A wait is a setTimeout, which fires at once past 2^31 − 1 ms: a "wait up to a month" would
    // retry immediately.
    if (name !== 'maxRetries' && value > MAX_TIMER_MS) throw new TypeError(`retry.${name} must be at most ${MAX_TIMER_MS} ms`);
  }
  return resolved;
}

/** Checks a per-attempt timeout: a positive number of ms that a timer can hold. */
export function assertTimeout(name: string, value: unknown): void {
  if (typeof value !== 'number' || !(value > 0 && value <= MAX_TIMER_MS)) {
    throw new TypeError(`${name} must be a number of ms above 0 and at most ${MAX_TIMER_MS}`);
  }
}

/** Exponential backoff with "equal jitter": half the step fixed, half random, so clients spread out. */
export function backoffDelay(retry: ResolvedRetry, retryIndex: number, random: () => number): number {
  const step = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** retryIndex);
  return Math.round(step / 2 + random() * (step / 2));
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** Obsolete RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** Obsolete asctime: `Sun Nov  6 08:49:37 1994`, GMT although it does not say so. */
const ASCTIME_DATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ( \\d|\\d{2}) ${TIME} (\\d{4})$`);

/**
 * An HTTP-date (RFC 9110 section 5.6.7) as epoch ms, or undefined for anything else. `Date.parse` is
 * not used: it reads `1.5` as 5 January 2001 and an asctime date in the local time zone.
 */
export function parseHttpDate(value: string, now: number): number | undefined {
  let day: string, month: string, year: number, h: string, m: string, s: string;
  let match = IMF_FIXDATE.exec(value);
  if (match) {
    [, day = '', month = '', , h = '', m = '', s = ''] = match;
    year = Number(match[3]);
  } else if ((match = RFC850_DATE.exec(value))) {
    [, day = '', month = '', , h = '', m = '', s = ''] = match;
    // A two-digit year more than 50 years ahead is the most recent past year with those digits.
    const nowYear = new Date(now).getUTCFullYear();
    year = Math.floor(nowYear / 100) * 100 + Number(match[3]);
    if (year > nowYear + 50) year -= 100;
  } else if ((match = ASCTIME_DATE.exec(value))) {
    [, month = '', day = '', h = '', m = '', s = ''] = match;
    year = Number(match[6]);
  } else {
    return undefined;
  }
  const [D, H, M, S] = [Number(day), Number(h), Number(m), Number(s)];
  if (D < 1 || D > 31 || H > 23 || M > 59 || S > 60) return undefined;
  return Date.UTC(year, MONTHS.indexOf(month), D, H, M, S);
}

/**
 * `Retry-After` as milliseconds: delta-seconds, or an HTTP date measured against `now` (the server's
 * time as best known). Anything else (`1.5`, `-1`, two values joined by a comma) is undefined, so
 * the caller backs off as if there were none.
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  // At most the longest timer (about 24.8 days): a value past it (hundreds of digits give Infinity)
  // would make a caller's setTimeout(retry, error.retryAfterMs) fire at once.
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed) * 1000, MAX_TIMER_MS);
  const date = parseHttpDate(trimmed, now);
  // An HTTP date has whole seconds: wait until the end of the second it names.
  return date === undefined ? undefined : Math.min(Math.max(0, date + 999 - now), MAX_TIMER_MS);
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
