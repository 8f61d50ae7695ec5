import { MoondraftError, withClientIds, type SignedParts } from '../errors.js';
import type { SessionStore, TokenPair } from '../session/session.js';
import { signRequest, signedParts, type RequestSigner } from '../signing/sign.js';
import type { Clock, ServerClock } from '../time/server-clock.js';
import { classifyFailure, type Transport, type TransportFailureKind, type TransportResponse } from '../transport/types.js';
import { parseRateLimit, type RateLimitState } from './rate-limit.js';
import { assertTimeout, backoffDelay, MAX_TIMER_MS, parseRetryAfter, type ResolvedRetry } from './retry.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Which credentials a route takes:
 * - `none`: public (time, sign-in, refresh);
 * - `session`: a signed-in session only (keys, sessions, logout, admin);
 * - `any`: the API key when the client has one, else the session.
 */
export type AuthMode = 'none' | 'session' | 'any';

/** Per-call options every method accepts as its last argument. */
export interface CallOptions {
  /** Cancels the call, including waits between retries. */
  signal?: AbortSignal;
  /** Per-attempt timeout in ms, at most 2^31 − 1 (defaults to the client's `timeoutMs`). */
  timeoutMs?: number;
}

export type QueryValue = string | number | boolean | undefined | null;

export interface RouteCall {
  method: HttpMethod;
  /** Path below the base URL, params already encoded with `pathParam`. */
  path: string;
  /** Query parameters in order; undefined and null are left out. */
  query?: object | undefined;
  /** A JSON value (serialised once), or a string sent byte for byte. */
  body?: unknown;
  auth: AuthMode;
  /** Safe to send twice. Defaults to true for GET, PUT and DELETE. */
  idempotent?: boolean;
  /**
   * The member of the answer that holds the list the method returns (`{ markets }`): an answer
   * without it as an array is an `unexpected_response`, not a TypeError or an undefined list.
   */
  list?: string;
  /**
   * What a 2xx carries: `object` (the default) a JSON object, so an empty body, `null`, a string or an
   * array (a proxy's empty 200, a body cut short) is an `unexpected_response` rather than a value of
   * the wrong type handed to the caller; `any` whatever JSON came, or undefined for an empty body
   * (routes answering 204, and the `request` escape hatch).
   */
  answer?: 'object' | 'any';
  options?: CallOptions | undefined;
  /**
   * The idempotency id the body carries (a generated one included): every error of the call names
   * it, so the caller can ask again with it when the outcome is unknown.
   */
  clientIds?: { clientOrderId?: string; clientWithdrawalId?: string };
}

export type RetryReason = 'rate_limited' | 'server_error' | 'network_error' | 'clock_skew' | 'timestamp_reused' | 'token_expired';

export interface RetryEvent {
  method: string;
  path: string;
  reason: RetryReason;
  /** The attempt that just failed (1-based). */
  attempt: number;
  /** Wait before the next attempt. */
  delayMs: number;
  error: MoondraftError;
}

export interface ResponseEvent {
  method: string;
  path: string;
  status: number;
  requestId: string | undefined;
  attempt: number;
  durationMs: number;
  rateLimit: RateLimitState[];
}

export interface Hooks {
  /** Called before each automatic retry (e.g. to log a 429 and its recovery). */
  onRetry?: (event: RetryEvent) => void;
  /** Called for every response received, success or not. */
  onResponse?: (event: ResponseEvent) => void;
}

export interface RequesterConfig {
  baseUrl: URL;
  transport: Transport;
  clock: Clock;
  serverClock: ServerClock;
  session: SessionStore;
  apiKey: string | undefined;
  signer: RequestSigner | undefined;
  recvWindowMs: number | undefined;
  retry: ResolvedRetry;
  timeoutMs: number;
  /** The longest response body read, in bytes. */
  maxResponseBytes: number;
  autoSyncTime: boolean;
  refreshMarginMs: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
  userAgent: string;
  hooks: Hooks;
}

const IDEMPOTENT = new Set<HttpMethod>(['GET', 'PUT', 'DELETE']);
/** 5xx answers that are business outcomes, not failures: retrying changes nothing. */
const NOT_TRANSIENT = new Set(['trading_halted']);
const utf8 = new TextEncoder();
/** A bearer token as it may go in a header: visible ASCII only (JWTs are base64url and dots). */
const HEADER_TOKEN = /^[\x21-\x7e]+$/;

/** Encodes one path parameter; refuses values that would change which route is addressed. */
export function pathParam(value: string): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..') {
    throw new TypeError(`not a valid path parameter: ${JSON.stringify(value)}`);
  }
  return encodeURIComponent(value);
}

/**
 * The parameters of a query, in order: a plain object's own entries, or a URLSearchParams' pairs.
 * Any other object (a Map, a class instance) has no own entries to read and would be sent as no
 * query at all, silently widening e.g. `DELETE /trading/orders?market=` to every market: refused.
 */
function queryEntries(query: object | undefined): Array<[string, unknown]> {
  if (query === undefined || query === null) return [];
  if (query instanceof URLSearchParams) return [...query];
  const proto: unknown = Object.getPrototypeOf(query);
  if (typeof query !== 'object' || (proto !== Object.prototype && proto !== null)) {
    throw new TypeError('query must be a plain object or a URLSearchParams');
  }
  return Object.entries(query);
}

interface Prepared {
  headers: Record<string, string>;
  sent: SignedParts | undefined;
  bearer: string | undefined;
}

/**
 * The request layer: credentials, signing, clock-skew correction, retries, token refresh and error
 * mapping. Each attempt is prepared from scratch, so every retry carries a fresh timestamp and signature.
 */
export class Requester {
  #syncing: Promise<void> | null = null;
  readonly #config: RequesterConfig;

  constructor(config: RequesterConfig) {
    this.#config = config;
  }

  /** The normalised URL of a call: `pathname + search` is both what is signed and what is sent. */
  url(path: string, query?: object): URL {
    const base = this.#config.baseUrl;
    const prefix = base.pathname.replace(/\/+$/, '');
    const search = queryEntries(query)
      .filter((entry): entry is [string, QueryValue] => entry[1] !== undefined && entry[1] !== null)
      .map(([k, v]) => {
        if (!['string', 'number', 'boolean'].includes(typeof v)) throw new TypeError(`query parameter ${k} must be a string, number or boolean`);
        return `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`;
      })
      .join('&');
    const url = new URL(`${prefix}${path}${search ? `?${search}` : ''}`, base.origin);
    // A path such as `//host/x` or `/\\host/x` would name another host: credentials never leave the base URL's origin.
    if (url.origin !== base.origin) throw new TypeError('path must stay on the base URL');
    return url;
  }

  call<T>(route: RouteCall): Promise<T> {
    const ids = route.clientIds;
    if (!ids) return this.send<T>(route);
    return this.send<T>(route).catch((error: unknown) => {
      throw error instanceof MoondraftError ? withClientIds(error, ids) : error;
    });
  }

  private async send<T>(route: RouteCall): Promise<T> {
    const config = this.#config;
    const url = this.url(route.path, route.query);
    const target = url.pathname + url.search;
    const body =
      route.body === undefined ? undefined : utf8.encode(typeof route.body === 'string' ? route.body : JSON.stringify(route.body));
    const idempotent = route.idempotent ?? IDEMPOTENT.has(route.method);
    const callerSignal = route.options?.signal;
    const context = { method: route.method, path: target };
    const timeoutMs = route.options?.timeoutMs ?? config.timeoutMs;
    assertTimeout('timeoutMs', timeoutMs);

    let retries = 0;
    let skewRetried = false;
    let replayRetried = false;
    let tokenRetried = false;
    for (let attempt = 1; ; attempt++) {
      if (callerSignal?.aborted) throw this.clientError('aborted', 'The call was aborted', context, attempt, callerSignal.reason);
      const prepared = await this.prepare(route, target, body);
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout;

      const sentAt = config.clock.now();
      let response: TransportResponse;
      try {
        response = await config.transport.send({ method: route.method, url, headers: prepared.headers, body, signal, maxResponseBytes: config.maxResponseBytes });
      } catch (cause) {
        const failure = classifyFailure(cause, timeout, callerSignal);
        // The status and headers may have come before the body was lost: keep what was received.
        const head = failure.received;
        const error = head
          ? new MoondraftError({
              code: CLIENT_CODE[failure.kind],
              status: head.status,
              detail: `${failure.message} (after the HTTP ${head.status} response headers arrived; the body did not)`,
              requestId: head.headers.get('x-request-id') ?? undefined,
              ...context,
              attempts: attempt,
              cause: failure,
            })
          : this.clientError(CLIENT_CODE[failure.kind], failure.message, context, attempt, failure);
        if ((failure.kind === 'network' || failure.kind === 'timeout') && idempotent && retries < config.retry.maxRetries) {
          await this.wait('network_error', backoffDelay(config.retry, retries++, config.random), error, attempt, callerSignal);
          continue;
        }
        throw error;
      }
      const receivedAt = config.clock.now();

      const requestId = response.headers.get('x-request-id') ?? undefined;
      config.hooks.onResponse?.({
        ...context,
        status: response.status,
        requestId,
        attempt,
        durationMs: receivedAt - sentAt,
        rateLimit: parseRateLimit(response.headers.get('ratelimit'), response.headers.get('ratelimit-policy')),
      });

      if (response.status >= 200 && response.status < 300) {
        this.recordTime(response, sentAt, receivedAt);
        return this.parseSuccess<T>(response, context, attempt, route.list, route.answer ?? 'object');
      }

      const error = this.toError(response, context, prepared.sent, attempt);
      if (error.code === 'timestamp_out_of_window') {
        // The estimate was wrong (or there was none): this answer's own server time is the best evidence.
        config.serverClock.reset();
      }
      this.recordTime(response, sentAt, receivedAt);

      if (response.status === 429) {
        const waitMs = error.retryAfterMs ?? backoffDelay(config.retry, retries, config.random);
        // A Retry-After at the longest timer stands for one past it (parseRetryAfter): never waited out.
        if (retries < config.retry.maxRetries && waitMs <= config.retry.maxRetryAfterMs && waitMs < MAX_TIMER_MS) {
          retries++;
          await this.wait('rate_limited', Math.min(waitMs + Math.round(config.random() * config.retry.jitterMs), MAX_TIMER_MS), error, attempt, callerSignal);
          continue;
        }
        throw error;
      }
      if (error.code === 'timestamp_out_of_window' && prepared.sent && !skewRetried) {
        // Refused before anything ran, so even a non-idempotent request is safe to send again.
        skewRetried = true;
        const delayMs = this.replayMemoryWait(response, error, prepared.sent);
        if (delayMs > 0) await this.wait('clock_skew', delayMs, error, attempt, callerSignal);
        else config.hooks.onRetry?.({ ...context, reason: 'clock_skew', attempt, delayMs: 0, error });
        continue;
      }
      if (error.code === 'replayed_request' && prepared.sent && idempotent && !replayRetried) {
        // Every attempt is signed anew, so an identical request most likely got the same timestamp
        // (the key's sequence followed an estimate that moved back by a second or more): sign it
        // again with the next one. Only when repeating it is harmless, though: the refusal may also
        // mean this very request already arrived once (a proxy that sent it twice), and then a
        // withdrawal signed again would be a second withdrawal.
        replayRetried = true;
        config.hooks.onRetry?.({ ...context, reason: 'timestamp_reused', attempt, delayMs: 0, error });
        continue;
      }
      if (error.code === 'token_expired' && prepared.bearer && !tokenRetried) {
        tokenRetried = true;
        // Another call may have refreshed already; refresh only if the rejected token is still current.
        if (config.session.current?.accessToken === prepared.bearer) await config.session.refresh((t) => this.exchangeRefreshToken(t), context);
        config.hooks.onRetry?.({ ...context, reason: 'token_expired', attempt, delayMs: 0, error });
        continue;
      }
      if (
        response.status >= 500 &&
        idempotent &&
        !NOT_TRANSIENT.has(error.code) &&
        retries < config.retry.maxRetries &&
        // Never sooner than the server asked: a Retry-After beyond the limit is thrown, as for a 429.
        (error.retryAfterMs ?? 0) <= config.retry.maxRetryAfterMs &&
        (error.retryAfterMs ?? 0) < MAX_TIMER_MS
      ) {
        const backoff = backoffDelay(config.retry, retries, config.random);
        // A Retry-After gets the jitter a 429's gets: every client refused by the same outage (an
        // order-thread restart, a database blip: Retry-After 1) would otherwise come back at the
        // same instant, the backoff being shorter than the Retry-After for the first retries.
        const retryAfter = error.retryAfterMs === undefined ? 0 : error.retryAfterMs + Math.round(config.random() * config.retry.jitterMs);
        const waitMs = Math.min(Math.max(backoff, retryAfter), MAX_TIMER_MS);
        retries++;
        await this.wait('server_error', waitMs, error, attempt, callerSignal);
        continue;
      }
      throw error;
    }
  }

  /** Measures the server clock from `/api/v1/time` (`samples` round trips; the shortest wins). */
  async syncTime(samples = 1, options?: CallOptions): Promise<void> {
    for (let i = 0; i < Math.max(1, samples); i++) {
      const sentAt = this.#config.clock.now();
      const { serverTime } = await this.call<{ serverTime: number }>({ method: 'GET', path: '/api/v1/time', auth: 'none', options });
      // The header was recorded by `call`; the body is the same reading, used when a proxy strips headers.
      if (!this.#config.serverClock.synced) this.#config.serverClock.record({ serverTime, sentAt, receivedAt: this.#config.clock.now() });
    }
  }

  /** `POST /api/v1/auth/refresh`: not idempotent, so never retried on 5xx or network errors (429 only). */
  exchangeRefreshToken(refreshToken: string): Promise<TokenPair> {
    return this.call<TokenPair>({ method: 'POST', path: '/api/v1/auth/refresh', body: { refreshToken }, auth: 'none', idempotent: false });
  }

  private async prepare(route: RouteCall, target: string, body: Uint8Array | undefined): Promise<Prepared> {
    const config = this.#config;
    const headers: Record<string, string> = { Accept: 'application/json, application/problem+json', 'User-Agent': config.userAgent };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const context = { method: route.method, path: target };

    const useKey = route.auth === 'any' && config.apiKey !== undefined;
    const useSession = route.auth === 'session' || (route.auth === 'any' && !useKey && config.session.current !== null);
    if (useSession) {
      await config.session.ensureFresh(config.refreshMarginMs, (t) => this.exchangeRefreshToken(t), context);
      const session = config.session.current;
      if (!session) throw this.clientError('session_unavailable', 'This call needs a signed-in session: call signIn() first', context, 1);
      // A token that cannot go in a header (e.g. restored with a stray line break) is refused here,
      // never echoed: fetch would quote the whole header value, token included, in its error.
      if (typeof session.accessToken !== 'string' || !HEADER_TOKEN.test(session.accessToken)) {
        throw this.clientError('session_unavailable', 'The session\'s access token is not a valid header value (not shown); sign in again or restore an intact session', context, 1);
      }
      headers.Authorization = `Bearer ${session.accessToken}`;
      return { headers, sent: undefined, bearer: session.accessToken };
    }
    if (!useKey) return { headers, sent: undefined, bearer: undefined };

    headers['X-API-Key'] = config.apiKey!;
    if (!config.signer) return { headers, sent: undefined, bearer: undefined }; // a key without secret: market data only
    if (config.autoSyncTime && !config.serverClock.synced) await this.syncOnce(route.options);
    const toSign = { timestamp: String(config.serverClock.nextTimestamp()), method: route.method, path: target, body: body ?? '' };
    headers['X-API-Timestamp'] = toSign.timestamp;
    headers['X-API-Signature'] = signRequest(config.signer, toSign);
    if (config.recvWindowMs !== undefined) headers['X-API-Recv-Window'] = String(config.recvWindowMs);
    return { headers, sent: signedParts(toSign), bearer: undefined };
  }

  /** One time sync shared by concurrent first calls; a failure here is left to the real call to report. */
  private syncOnce(options: CallOptions | undefined): Promise<void> {
    this.#syncing ??= this.syncTime(1, options?.signal ? { signal: options.signal } : undefined)
      .catch(() => undefined)
      .finally(() => {
        this.#syncing = null;
      });
    return this.#syncing;
  }

  /**
   * A `timestamp_out_of_window` refusal of a timestamp inside the window of the server time it came
   * with: the clock was not the problem, the server's replay memory began less than a second ago (a
   * restart, or its shared state lost) and takes only timestamps from 1 s after that. Returns how
   * long to wait so that one signed then is taken (0 when the timestamp was out of the window).
   */
  private replayMemoryWait(response: TransportResponse, error: MoondraftError, sent: SignedParts): number {
    const header = response.headers.get('x-api-server-time')?.trim();
    const fromBody = error.problem?.serverTime;
    const serverTime = header && /^\d+$/.test(header) ? Number(header) : typeof fromBody === 'number' ? fromBody : undefined;
    const timestamp = Number(sent.timestamp);
    if (serverTime === undefined || timestamp > serverTime + 1000 || timestamp < serverTime - (this.#config.recvWindowMs ?? 5000)) return 0;
    // The memory began at that server time at the latest: a timestamp from 1 s after it is taken.
    const estimate = this.#config.serverClock.estimate();
    const lean = estimate ? Math.min(estimate.uncertaintyMs, 1000) : 0;
    return Math.min(Math.max(0, Math.ceil(serverTime + 1000 - (this.#config.serverClock.now() - lean))), 2000);
  }

  private recordTime(response: TransportResponse, sentAt: number, receivedAt: number): void {
    const header = response.headers.get('x-api-server-time');
    if (header === null || !/^\d+$/.test(header.trim())) return;
    this.#config.serverClock.record({ serverTime: Number(header.trim()), sentAt, receivedAt });
  }

  private async wait(reason: RetryReason, delayMs: number, error: MoondraftError, attempt: number, signal: AbortSignal | undefined): Promise<void> {
    this.#config.hooks.onRetry?.({ method: error.method, path: error.path, reason, attempt, delayMs, error });
    try {
      await this.#config.sleep(delayMs, signal);
    } catch (cause) {
      throw this.clientError('aborted', 'The call was aborted while waiting to retry', error, attempt, cause);
    }
  }

  private parseSuccess<T>(response: TransportResponse, context: { method: string; path: string }, attempt: number, list: string | undefined, answer: 'object' | 'any'): T {
    const unexpected = (detail: string, cause?: unknown) =>
      new MoondraftError({
        code: 'unexpected_response',
        status: response.status,
        detail,
        requestId: response.headers.get('x-request-id') ?? undefined,
        ...context,
        attempts: attempt,
        cause,
      });
    // Done by the server all the same: not sent again.
    if (response.tooLarge) throw unexpected(`The response body is over maxResponseBytes (${this.#config.maxResponseBytes} bytes): not read`);
    if (response.status === 204 || response.body.trim() === '') {
      if (list !== undefined) throw unexpected(`HTTP ${response.status} without the expected ${list} list`);
      if (answer === 'object') throw unexpected(`HTTP ${response.status} with an empty body where a JSON object was expected`);
      return undefined as T;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(response.body);
    } catch (cause) {
      throw unexpected('The response body is not JSON', cause);
    }
    if (list !== undefined && !(parsed !== null && typeof parsed === 'object' && Array.isArray((parsed as Record<string, unknown>)[list]))) {
      throw unexpected(`The response body has no ${list} list`);
    }
    if (answer === 'object' && (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw unexpected('The response body is not a JSON object');
    }
    return parsed as T;
  }

  private toError(response: TransportResponse, context: { method: string; path: string }, sent: SignedParts | undefined, attempt: number): MoondraftError {
    // An HTTP-date Retry-After is the server's clock: measure it against the server time as best known.
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), this.#config.serverClock.now());
    const headerRequestId = response.headers.get('x-request-id') ?? undefined;
    const problem = response.tooLarge ? undefined : readProblem(response);
    if (!problem) {
      const location = response.headers.get('location');
      return new MoondraftError({
        // A 429 is a rate limit whatever its body (a proxy's or a load balancer's page): the caller
        // handles it as one, with the Retry-After it came with.
        code: response.status === 429 ? 'rate_limited' : 'unexpected_response',
        status: response.status,
        detail:
          response.status === 429
            ? `HTTP 429 without a problem body (rate limited before the server, e.g. by a proxy)${response.tooLarge ? `; its body is over maxResponseBytes (${this.#config.maxResponseBytes} bytes): not read` : ''}`
            : response.status >= 300 && response.status < 400
            ? `Redirected${location ? ` to ${location}` : ''}; redirects are not followed (check baseUrl)`
            : response.tooLarge
              ? `HTTP ${response.status} with a body over maxResponseBytes (${this.#config.maxResponseBytes} bytes): not read`
              : `HTTP ${response.status} without the server's problem body (application/problem+json with type, status, code and requestId)`,
        requestId: headerRequestId,
        retryAfterMs,
        sent,
        ...context,
        attempts: attempt,
      });
    }
    return new MoondraftError({
      code: problem.code,
      // The response's own status, on which the retry decisions were made; the body's copy may
      // disagree (a proxy rewrote one of them) and stays readable in `problem`.
      status: response.status,
      detail: typeof problem.detail === 'string' ? problem.detail : typeof problem.title === 'string' ? problem.title : problem.code,
      title: typeof problem.title === 'string' ? problem.title : undefined,
      type: typeof problem.type === 'string' ? problem.type : undefined,
      requestId: typeof problem.requestId === 'string' ? problem.requestId : headerRequestId,
      problem,
      retryAfterMs,
      signed: readSignedParts(problem.signed),
      sent,
      ...context,
      attempts: attempt,
    });
  }

  private clientError(
    code: 'network_error' | 'timeout' | 'tls_error' | 'certificate_pin_mismatch' | 'aborted' | 'session_unavailable',
    detail: string,
    context: { method: string; path: string },
    attempt: number,
    cause?: unknown,
  ): MoondraftError {
    return new MoondraftError({ code, status: 0, detail, method: context.method, path: context.path, attempts: attempt, cause });
  }
}

const CLIENT_CODE: Record<TransportFailureKind, 'network_error' | 'timeout' | 'tls_error' | 'certificate_pin_mismatch' | 'aborted'> = {
  network: 'network_error',
  timeout: 'timeout',
  aborted: 'aborted',
  tls: 'tls_error',
  pin: 'certificate_pin_mismatch',
};

/**
 * The server's problem in a refusal, or undefined when the answer is not one. The server sends every
 * refusal as `application/problem+json` with `type`, `status`, `code` and `requestId` (src/http/problem.ts):
 * anything else (a proxy's or a misrouted upstream's JSON that happens to carry a `code` such as
 * `invalid_token`) is not the server speaking, and must not end a session, spend a refresh token,
 * stop retries or move the clock estimate.
 */
function readProblem(response: TransportResponse): (Record<string, unknown> & { code: string }) | undefined {
  const mediaType = (response.headers.get('content-type') ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (mediaType !== 'application/problem+json') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(response.body);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const p = parsed as Record<string, unknown>;
  if (typeof p.code !== 'string' || typeof p.type !== 'string' || typeof p.status !== 'number' || typeof p.requestId !== 'string') return undefined;
  return p as Record<string, unknown> & { code: string };
}

/** The server's view of what it signed, from an `invalid_signature` problem. */
function readSignedParts(value: unknown): SignedParts | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  const bodySha256 = v.bodySha256 ?? v.bodySHA256 ?? v.bodyHash ?? v.sha256;
  return {
    timestamp: String(v.timestamp ?? ''),
    method: String(v.method ?? ''),
    path: String(v.path ?? v.pathWithQuery ?? ''),
    bodyLength: Number(v.bodyLength ?? v.length ?? NaN),
    bodySha256: String(bodySha256 ?? ''),
  };
}
