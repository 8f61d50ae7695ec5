/**
 * The canonical message of a signed request (API.md "API keys and request signing"):
 *
 *     timestamp + METHOD + pathWithQuery + body
 *
 * `method` and `pathWithQuery` are taken exactly as sent on the request line (no case folding, no
 * re-encoding, no reordering of the query string) and `body` is the raw body bytes (empty when
 * there is none). Nothing is normalised, so the server and every client compute the same bytes.
 *
 * This file has no imports at all: the SDK and browsers use it as it is.
 *
 * @example
 * ```ts
 * const message = canonicalMessage({ timestamp: '1764345600000', method: 'GET', pathWithQuery: '/api/v1/account', body: '' });
 * ```
 */
export interface CanonicalParts {
  /** X-API-Timestamp exactly as sent (epoch milliseconds, decimal digits). */
  timestamp: string;
  /** The request method exactly as sent on the request line. */
  method: string;
  /** The request target exactly as sent: path and query string, percent-encoding untouched. */
  pathWithQuery: string;
  /** The raw body: its bytes, or a string signed as its UTF-8 bytes. */
  body: Uint8Array | string;
}

const encoder = new TextEncoder();

/** The bytes that are signed: UTF-8 of `timestamp + method + pathWithQuery`, then the body bytes. */
export function canonicalMessage(parts: CanonicalParts): Uint8Array {
  const head = encoder.encode(parts.timestamp + parts.method + parts.pathWithQuery);
  const body = typeof parts.body === 'string' ? encoder.encode(parts.body) : parts.body;
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/** Receive-window rules shared by the server and clients. */
export const RECV_WINDOW = {
  /** Used when X-API-Recv-Window is absent. */
  defaultMs: 5_000,
  /** The largest X-API-Recv-Window a client may ask for. */
  maxMs: 60_000,
  /** How far ahead of server time a timestamp may be (client clocks run a little fast). */
  futureToleranceMs: 1_000,
} as const;

export type TimestampVerdict =
  | { ok: true }
  | { ok: false; reason: 'malformed_timestamp' | 'malformed_window' | 'too_old' | 'too_far_ahead' };

/**
 * Whether a request timestamp is inside the receive window: at most `recvWindow` ms behind server
 * time and at most 1 s ahead of it. `timestamp` and `recvWindow` are the header values as sent.
 */
export function checkTimestamp(now: number, timestamp: string, recvWindow: string | undefined): TimestampVerdict {
  // Plain decimal without a leading zero: one spelling per instant, since the text as sent is what
  // is signed (and what identifies the request to the replay memory).
  if (!/^[1-9]\d{0,15}$/.test(timestamp)) return { ok: false, reason: 'malformed_timestamp' };
  let windowMs: number = RECV_WINDOW.defaultMs;
  if (recvWindow !== undefined) {
    if (!/^\d{1,6}$/.test(recvWindow)) return { ok: false, reason: 'malformed_window' };
    windowMs = Number(recvWindow);
    if (windowMs < 1 || windowMs > RECV_WINDOW.maxMs) return { ok: false, reason: 'malformed_window' };
  }
  const ts = Number(timestamp);
  if (now - ts > windowMs) return { ok: false, reason: 'too_old' };
  if (ts - now > RECV_WINDOW.futureToleranceMs) return { ok: false, reason: 'too_far_ahead' };
  return { ok: true };
}
