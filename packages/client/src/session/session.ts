import { MoondraftError } from '../errors.js';
import type { Clock } from '../time/server-clock.js';
import { TransportError } from '../transport/types.js';

/** What `POST /api/v1/auth/login` and `/auth/refresh` answer. */
export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  tokenType: 'Bearer';
  /** Access-token lifetime in seconds (3600). */
  expiresIn: number;
  /** The sign-in session these tokens belong to (see `sessions.list()`). */
  sessionId: string;
  /** The account signed in (the first login creates it). */
  account: { id: string; wallet: string; chain: string; role: string };
}

/** The session a client holds. `expiresAt` is on the local clock (receipt time + `expiresIn`). */
export interface Session {
  accessToken: string;
  /** Null once the refresh token is spent or its fate is unknown: sign in again when the access token expires. */
  refreshToken: string | null;
  expiresAt: number;
  /** The server's id of this sign-in session (`sessions.list()` marks it `current`). */
  sessionId?: string;
}

export type SessionListener = (session: Session | null) => void;

/** The codes with which the server refuses a refresh token (401 problems): the session is over. */
const TOKEN_REFUSALS = new Set<string>(['invalid_token', 'token_expired', 'token_revoked', 'refresh_token_reused']);

/**
 * Holds the access and refresh tokens and refreshes them. Refresh tokens rotate on every use and the
 * server revokes the whole session when a spent one is presented again, so:
 * - one refresh at a time: concurrent callers share the refresh in flight;
 * - only the newest refresh token is kept;
 * - a refresh whose outcome is unknown (no answer, or a 5xx) never re-presents its token: the server may
 *   have rotated it already, and presenting it again would revoke the session. The access token stays
 *   usable until it expires; after that the caller signs in again. A refresh that never reached the
 *   server (429, connection refused, no such host, failed TLS handshake), any 4xx that is not the
 *   server's problem refusing the token (a proxy's bare 401 included) or the server's 503
 *   `service_unavailable` (nothing done: its store or shared state away, or it is shutting down)
 *   keeps its token. Only the server's refusal of the token (`invalid_token`, `token_expired`,
 *   `token_revoked`, `refresh_token_reused`) ends the session.
 */
export class SessionStore {
  // #private: tokens never show up in console.log / util.inspect of a client.
  #session: Session | null = null;
  #inflight: Promise<Session> | null = null;
  /** Bumped whenever the session is replaced, so a late refresh answer never overwrites a newer session. */
  #generation = 0;

  constructor(
    private readonly clock: Clock,
    private readonly listener?: SessionListener,
  ) {}

  get current(): Session | null {
    return this.#session ? { ...this.#session } : null;
  }

  /** Adopts a token pair from login or refresh. */
  adopt(pair: TokenPair): Session {
    this.#generation++;
    this.#session = {
      accessToken: pair.accessToken,
      refreshToken: pair.refreshToken,
      expiresAt: this.clock.now() + pair.expiresIn * 1000,
      ...(typeof pair.sessionId === 'string' ? { sessionId: pair.sessionId } : {}),
    };
    this.listener?.(this.current);
    return this.current!;
  }

  /** Restores a stored session (e.g. after a restart), or forgets it with `null`. */
  restore(session: Session | null): void {
    this.#generation++;
    this.#session = session ? { ...session } : null;
    this.listener?.(this.current);
  }

  clear(): void {
    if (this.#session === null) return;
    this.restore(null);
  }

  /** Whether the access token expires within `marginMs` and a refresh token is there to renew it. */
  needsRefresh(marginMs: number): boolean {
    return this.#session !== null && this.#session.refreshToken !== null && this.#session.expiresAt - this.clock.now() <= marginMs;
  }

  /**
   * Before a Bearer request: waits for a refresh in flight, or starts one when the access token expires
   * within `marginMs`. A failed refresh is not fatal while the access token is still valid.
   */
  async ensureFresh(marginMs: number, exchange: (refreshToken: string) => Promise<TokenPair>, context: { method: string; path: string }): Promise<void> {
    if (!this.#inflight && !this.needsRefresh(marginMs)) return;
    try {
      await this.refresh(exchange, context);
    } catch (error) {
      if (this.#session && this.#session.expiresAt > this.clock.now()) return;
      throw error;
    }
  }

  /**
   * Exchanges the current refresh token for a new pair, once even when called concurrently.
   * `exchange` performs `POST /auth/refresh` and must not retry on 5xx or network errors.
   */
  refresh(exchange: (refreshToken: string) => Promise<TokenPair>, context: { method: string; path: string }): Promise<Session> {
    if (this.#inflight) return this.#inflight;
    const spending = this.#session?.refreshToken ?? null;
    if (spending === null) {
      return Promise.reject(
        new MoondraftError({
          code: 'session_unavailable',
          status: 0,
          detail: this.#session ? 'The session cannot be renewed (its refresh token is spent or unknown); sign in again' : 'Not signed in',
          ...context,
        }),
      );
    }
    // Taken out of the store before the call, and listeners told so (a session persisted now cannot
    // present this token again after a crash): whatever happens, it is never presented twice.
    this.#session = { ...this.#session!, refreshToken: null };
    this.listener?.(this.current);
    const generation = this.#generation;
    const run = (async () => {
      try {
        const pair = await exchange(spending);
        if (generation !== this.#generation) {
          const current = this.current;
          if (current) return current;
          throw new MoondraftError({ code: 'session_unavailable', status: 0, detail: 'The session ended while it was being refreshed', ...context });
        }
        return this.adopt(pair);
      } catch (error) {
        if (generation !== this.#generation) throw error;
        const status = error instanceof MoondraftError ? error.status : 0;
        // No connection was made (refused: the server restarting; no such host; a failed handshake):
        // the server never saw the token, so it is not spent.
        const neverSent = error instanceof MoondraftError && error.cause instanceof TransportError && error.cause.neverSent;
        // The server's refusals of the token itself are problems naming it (invalid, expired, revoked,
        // reused): only those end the session. A 401 without one (a proxy's or gateway's page, JSON
        // that is not the server's application/problem+json even when it names one of these codes:
        // the requester makes it an unexpected_response) may never have reached the server: like any other 4xx (rate
        // limited, the address blocked, the request too slow or too large, plain HTTP refused) it
        // came before the token was looked at, so the token was not spent.
        const tokenRefused = error instanceof MoondraftError && error.problem !== undefined && TOKEN_REFUSALS.has(error.code);
        // The server's own 503 service_unavailable (its database or shared state away, or it is
        // shutting down) means nothing was done: the rotation is one transaction, rolled back when
        // it fails before its COMMIT (a failure at COMMIT, whose outcome is unknown, is a 500). The
        // token was not spent; dropping it would end the session over a one-second database blip
        // or a rolling restart.
        const notRun = status === 503 && error instanceof MoondraftError && error.code === 'service_unavailable';
        if ((neverSent || notRun || (status >= 400 && status < 500 && !tokenRefused)) && this.#session) {
          this.#session = { ...this.#session, refreshToken: spending };
        } else if (tokenRefused) {
          // A definite refusal (reused, revoked, expired, invalid): the session is over.
          this.#session = null;
          this.#generation++;
        }
        // Any other 5xx, or no answer: the outcome is unknown, so the token stays dropped.
        this.listener?.(this.current);
        throw error;
      } finally {
        this.#inflight = null;
      }
    })();
    this.#inflight = run;
    return run;
  }
}
