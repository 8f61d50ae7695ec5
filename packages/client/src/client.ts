import { isIP } from 'node:net';
import { AccountApi, WithdrawalsApi } from './api/account.js';
import { AuthApi, type EthereumSigner, type SignInOptions } from './api/auth.js';
import { KeysApi } from './api/keys.js';
import { MarketApi } from './api/market.js';
import { SandboxApi } from './api/sandbox.js';
import { SessionsApi } from './api/sessions.js';
import { SystemApi } from './api/system.js';
import { TokensApi } from './api/tokens.js';
import { TradingApi } from './api/trading.js';
import { Requester, type AuthMode, type CallOptions, type Hooks, type HttpMethod } from './core/requester.js';
import { assertTimeout, resolveRetry, sleep as defaultSleep, type RetryOptions } from './core/retry.js';
import { SessionStore, type Session, type SessionListener } from './session/session.js';
import { ed25519PublicKey, ed25519Signer, hmacSigner, type RequestSigner } from './signing/sign.js';
import { sequenceFor, ServerClock, systemClock, type Clock, type ClockEstimate } from './time/server-clock.js';
import { fetchTransport } from './transport/fetch.js';
import { nodeTransport, type TlsOptions } from './transport/node.js';
import type { Transport } from './transport/types.js';

/** The methods the API uses (HttpMethod), for callers the type does not reach (JavaScript). */
const HTTP_METHODS: ReadonlySet<string> = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8080';
const VERSION = '0.1.0';

export interface MoondraftClientOptions {
  /** Server URL. Default: `MOONDRAFT_URL`, else `http://127.0.0.1:8080`. */
  baseUrl?: string | URL;
  /**
   * The API key (`md_test_…` / `md_live_…`). Default: `MOONDRAFT_API_KEY`. Credentials come from code
   * or from the environment, never a mix: when this, `apiSecret` or `privateKey` is given here, none is
   * read from the environment (so a key is never paired with another key's secret).
   */
  apiKey?: string;
  /** HMAC secret. Default: `MOONDRAFT_API_SECRET`. Prefer the environment to code. */
  apiSecret?: string;
  /** Ed25519 private key (32-byte seed, hex or bytes) for `ed25519` keys. Default: `MOONDRAFT_API_PRIVATE_KEY`. */
  privateKey?: string | Uint8Array;
  /** Where defaults are read (default `process.env`); `false` reads nothing. */
  env?: Record<string, string | undefined> | false;
  /** A session to resume (as given to `onSessionChange` earlier). */
  session?: Session | null;
  /** Called whenever the session changes (sign-in, every refresh rotation, logout): persist the newest tokens here. */
  onSessionChange?: SessionListener;
  /** `X-API-Recv-Window` in ms (1–60000); the server's default (5000) when left out. */
  recvWindowMs?: number;
  retry?: RetryOptions;
  /** Per-attempt timeout in ms, at most 2^31 − 1 (default 30 s). */
  timeoutMs?: number;
  /**
   * The longest response body read, in bytes (default 64 MiB). A longer one (a proxy's endless page,
   * a download the URL was misrouted to) is not read into memory: the call throws `unexpected_response`.
   */
  maxResponseBytes?: number;
  /** Measure the server clock (`GET /api/v1/time`) before the first signed request (default true). */
  autoSyncTime?: boolean;
  /** Refresh the access token this long before it expires (default 60 s). */
  refreshMarginMs?: number;
  /** HTTPS trust: SPKI pins and extra CAs. Setting it selects the node:https transport. */
  tls?: TlsOptions;
  /** `auto` (default): fetch, or node:https when `tls` is set. A Transport object replaces both. */
  transport?: 'auto' | 'fetch' | 'node' | Transport;
  /** The fetch to use with the fetch transport (default: global fetch). */
  fetch?: typeof fetch;
  /** Allow plain `http://` to a host other than loopback (API keys and tokens would cross the network in clear). */
  allowInsecureHttp?: boolean;
  /** Local clock (tests, simulations). */
  clock?: Clock;
  /** Waits between retries (tests may make it instant). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Jitter source in [0, 1) (default Math.random). */
  random?: () => number;
  userAgent?: string;
  /** Observe retries and responses (e.g. to log a 429 and its recovery). */
  hooks?: Hooks;
}

/** Options of the `request` escape hatch (routes this client has no method for, such as admin routes). */
export interface RawRequestOptions extends CallOptions {
  query?: object;
  /** A JSON value, or a string sent byte for byte. */
  body?: unknown;
  /** Default `any`: the API key when configured, else the session. */
  auth?: AuthMode;
  /** Whether a 5xx or network failure may be retried (default: GET, PUT and DELETE). */
  idempotent?: boolean;
}

/**
 * The Moondraft API client. Signs every API-key request, corrects clock skew, retries what is safe to
 * retry, keeps a wallet session fresh, and maps failures to `MoondraftError`.
 *
 * @example
 * const client = new MoondraftClient({ baseUrl: 'https://api.example.com' }); // key and secret from the environment
 * const order = await client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'limit', price: '0.0125', quantity: '1000' });
 */
export class MoondraftClient {
  readonly baseUrl: URL;
  /** The API key in use (an identifier, not a secret), if any. */
  readonly apiKey: string | undefined;
  /** `hmac`, `ed25519`, `unsigned` (a key without secret: market data only) or `none`. */
  readonly credentialKind: 'hmac' | 'ed25519' | 'unsigned' | 'none';

  readonly market: MarketApi;
  readonly trading: TradingApi;
  readonly account: AccountApi;
  readonly withdrawals: WithdrawalsApi;
  readonly tokens: TokensApi;
  readonly keys: KeysApi;
  readonly sessions: SessionsApi;
  readonly sandbox: SandboxApi;
  readonly auth: AuthApi;
  readonly system: SystemApi;

  readonly #requester: Requester;
  readonly #serverClock: ServerClock;
  readonly #session: SessionStore;
  readonly #transport: Transport;

  constructor(options: MoondraftClientOptions = {}) {
    const env = options.env === false ? {} : (options.env ?? process.env);
    const fromEnv = (name: string) => {
      const v = env[name];
      return v === undefined || v.trim() === '' ? undefined : v.trim();
    };

    this.baseUrl = resolveBaseUrl(options.baseUrl ?? fromEnv('MOONDRAFT_URL') ?? DEFAULT_BASE_URL, options.allowInsecureHttp ?? false);

    // Credentials come from code or from the environment, never a mix: any one given in code means
    // none is read from the environment (an apiSecret in code never pairs with the environment's key).
    const inCode = options.apiKey !== undefined || options.apiSecret !== undefined || options.privateKey !== undefined;
    const apiKey = inCode ? options.apiKey : fromEnv('MOONDRAFT_API_KEY');
    const apiSecret = inCode ? options.apiSecret : fromEnv('MOONDRAFT_API_SECRET');
    const privateKey = inCode ? options.privateKey : fromEnv('MOONDRAFT_API_PRIVATE_KEY');
    if (apiSecret !== undefined && privateKey !== undefined) throw new TypeError('give either an HMAC apiSecret or an ed25519 privateKey, not both');
    if (apiKey === undefined && (apiSecret !== undefined || privateKey !== undefined)) throw new TypeError('a secret or private key was given without its apiKey');
    if (apiKey !== undefined && !/^[\x21-\x7e]+$/.test(apiKey)) throw new TypeError('apiKey contains characters that cannot go in a header');
    let signer: RequestSigner | undefined;
    if (apiSecret !== undefined) signer = hmacSigner(apiSecret);
    else if (privateKey !== undefined) signer = ed25519Signer(privateKey);
    this.apiKey = apiKey;
    this.credentialKind = apiKey === undefined ? 'none' : (signer?.kind ?? 'unsigned');

    if (options.recvWindowMs !== undefined && !(Number.isInteger(options.recvWindowMs) && options.recvWindowMs >= 1 && options.recvWindowMs <= 60_000)) {
      throw new TypeError('recvWindowMs must be an integer from 1 to 60000');
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    // AbortSignal.timeout fires after 1 ms when asked for more than 2^31 - 1 ms: refused, not shortened.
    assertTimeout('timeoutMs', timeoutMs);

    const maxResponseBytes = options.maxResponseBytes ?? 64 * 1024 * 1024;
    if (!(Number.isSafeInteger(maxResponseBytes) && maxResponseBytes >= 1)) throw new TypeError('maxResponseBytes must be a whole number of bytes ≥ 1');

    const clock = options.clock ?? systemClock;
    // The server accepts a signature once per signer: an HMAC key, or an ed25519 key pair whichever
    // of its keys a request names (one pair may be registered on several keys). Keys sharing a pair
    // share one timestamp sequence, else the same request by two of them would be signed alike.
    const sequenceKey = privateKey !== undefined && signer ? `ed25519:${ed25519PublicKey(privateKey)}` : apiKey;
    this.#serverClock = new ServerClock(clock, sequenceKey === undefined ? undefined : sequenceFor(sequenceKey));
    this.#session = new SessionStore(clock, options.onSessionChange);
    if (options.session) this.#session.restore(options.session);
    this.#transport = chooseTransport(options, this.baseUrl);

    this.#requester = new Requester({
      baseUrl: this.baseUrl,
      transport: this.#transport,
      clock,
      serverClock: this.#serverClock,
      session: this.#session,
      apiKey,
      signer,
      recvWindowMs: options.recvWindowMs,
      retry: resolveRetry(options.retry),
      timeoutMs,
      maxResponseBytes,
      autoSyncTime: options.autoSyncTime ?? true,
      refreshMarginMs: options.refreshMarginMs ?? 60_000,
      sleep: options.sleep ?? defaultSleep,
      random: options.random ?? Math.random,
      userAgent: options.userAgent ?? `moondraft-client/${VERSION} node/${process.versions.node}`,
      hooks: options.hooks ?? {},
    });

    this.market = new MarketApi(this.#requester);
    this.trading = new TradingApi(this.#requester);
    this.account = new AccountApi(this.#requester);
    this.withdrawals = new WithdrawalsApi(this.#requester);
    this.tokens = new TokensApi(this.#requester);
    this.keys = new KeysApi(this.#requester);
    this.sessions = new SessionsApi(this.#requester);
    this.sandbox = new SandboxApi(this.#requester);
    this.auth = new AuthApi(this.#requester, this.#session, this.baseUrl);
    this.system = new SystemApi(this.#requester);
  }

  /** Wallet sign-in with a viem account (see `auth.signIn`). */
  signIn(account: EthereumSigner, options?: SignInOptions): Promise<Session> {
    return this.auth.signIn(account, options);
  }

  /** The session in use (tokens and local expiry), or null. */
  get session(): Session | null {
    return this.#session.current;
  }

  /** Adopts a stored session, or forgets the current one with `null` (without revoking it: see `auth.logout`). */
  setSession(session: Session | null): void {
    this.#session.restore(session);
  }

  /** Server time minus local time in ms, as estimated from `X-API-Server-Time`; undefined before any response. */
  get clockOffsetMs(): number | undefined {
    return this.#serverClock.estimate()?.offsetMs;
  }

  /** The full estimate: offset, its uncertainty (half the round trip) and when it was measured. */
  get clockEstimate(): ClockEstimate | undefined {
    return this.#serverClock.estimate();
  }

  /** The server's time now, as estimated (epoch ms). */
  serverNow(): number {
    return this.#serverClock.now();
  }

  /** Measures the server clock now with `samples` calls to `GET /api/v1/time`; returns the offset in ms. */
  async syncTime(samples = 3, options?: CallOptions): Promise<number> {
    await this.#requester.syncTime(samples, options);
    return this.#serverClock.estimate()?.offsetMs ?? 0;
  }

  /**
   * Any route, with the same signing, retries and error mapping (for routes without a method here,
   * such as `/api/v1/admin/*`). `path` is below the base URL and may not hold a query (use `query`).
   */
  request<T = unknown>(method: HttpMethod, path: string, options: RawRequestOptions = {}): Promise<T> {
    // Upper case, as signed: fetch would send a lower-case 'patch' as it is, another method than the
    // signature names (and 'get' would lose the retries of an idempotent request).
    const verb = String(method).toUpperCase() as HttpMethod;
    if (!HTTP_METHODS.has(verb)) throw new TypeError(`method must be one of ${[...HTTP_METHODS].join(', ')}`);
    if (!path.startsWith('/') || path.startsWith('//') || path.includes('\\') || path.includes('?') || path.includes('#')) {
      throw new TypeError('path must start with a single / and hold no backslash, query or fragment (use options.query)');
    }
    const { query, body, auth, idempotent, ...callOptions } = options;
    // fetch refuses a GET with a body with a TypeError, which would pass for a network failure (and be retried).
    if (verb === 'GET' && body !== undefined) throw new TypeError('a GET request carries no body (use options.query)');
    return this.#requester.call<T>({
      method: verb,
      path,
      query,
      body,
      auth: auth ?? 'any',
      // Any route: whatever JSON it answers, or undefined for none.
      answer: 'any',
      ...(idempotent !== undefined ? { idempotent } : {}),
      options: callOptions,
    });
  }

  /** What console.log shows: never tokens or secrets. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `MoondraftClient { baseUrl: '${this.baseUrl.href}', credentialKind: '${this.credentialKind}', signedIn: ${this.#session.current !== null} }`;
  }

  /** Closes pooled connections (node:https transport). The client must not be used afterwards. */
  close(): void {
    this.#transport.close();
  }
}

function resolveBaseUrl(value: string | URL, allowInsecureHttp: boolean): URL {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    // Not echoed: a malformed URL may still hold a password (https://user:pass@…).
    throw new TypeError('baseUrl is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('baseUrl must be http: or https:');
  if (url.search || url.hash || url.username || url.password) throw new TypeError('baseUrl may not hold a query, fragment or credentials');
  if (url.protocol === 'http:' && !allowInsecureHttp && !isLoopback(url.hostname)) {
    throw new TypeError(`refusing plain http to ${url.host}: API keys and tokens would travel in clear (use https, or allowInsecureHttp)`);
  }
  return url;
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '0:0:0:0:0:0:0:1' || host.startsWith('::ffff:127.');
}

function chooseTransport(options: MoondraftClientOptions, baseUrl: URL): Transport {
  const choice = options.transport ?? 'auto';
  if (typeof choice === 'object') {
    if (options.tls) throw new TypeError('tls options apply to the built-in node transport, not to a custom one');
    return choice;
  }
  if (options.tls?.pins && baseUrl.protocol !== 'https:') throw new TypeError('certificate pins need an https baseUrl');
  if (choice === 'fetch') {
    if (options.tls) throw new TypeError('tls options (pins, ca) need the node transport: fetch has no hook into certificate checks');
    return fetchTransport(options.fetch);
  }
  if (choice === 'node' || options.tls) return nodeTransport(options.tls);
  return fetchTransport(options.fetch);
}
