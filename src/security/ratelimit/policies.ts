import type { RateLimitConfig } from '../../config/index.js';

/**
 * Which limit a request falls under: the categories of API.md ("Rate limits"), keyed by API key,
 * by account for sessions, or by client address when unauthenticated. Pure: no I/O, no HTTP.
 */
export const RATE_CATEGORIES = ['market', 'trading', 'account', 'tokens'] as const;
export type RateCategory = (typeof RATE_CATEGORIES)[number];

/** Requests per second (API.md); partners may have other limits per account. */
export const DEFAULT_LIMITS: Readonly<Record<RateCategory, number>> = Object.freeze({ market: 100, trading: 50, account: 25, tokens: 10 });

export type CategoryLimits = Record<RateCategory, number>;
export type LimitOverrides = Partial<CategoryLimits>;

export const WINDOW_MS = 1000;

function under(path: string, base: string): boolean {
  return path === base || path.startsWith(`${base}/`);
}

/** The category of a route path (`/api/v1/trading/orders/:id` → trading), or null when uncategorised. */
export function categoryOf(path: string): RateCategory | null {
  if (under(path, '/api/v1/market')) return 'market';
  if (under(path, '/api/v1/trading')) return 'trading';
  // The sandbox faucet moves money (a ledger transaction and an audit record a call): counted as
  // account requests, or tiny grants at any rate would stay inside its per-day amount.
  if (under(path, '/api/v1/account') || under(path, '/api/v1/keys') || under(path, '/api/v1/security') || under(path, '/api/v1/webhooks') || under(path, '/api/v1/sandbox')) return 'account';
  if (under(path, '/api/v1/tokens')) return 'tokens';
  return null;
}

export function effectiveLimits(overrides: LimitOverrides | undefined): CategoryLimits {
  return { ...DEFAULT_LIMITS, ...(overrides ?? {}) };
}

/** A named limit: its header name, size and window, and what happens when shared state is down. */
export interface Policy {
  name: string;
  limit: number;
  windowMs: number;
  /**
   * Refuse (503) when the shared limiter is unavailable, instead of falling back to a per-process
   * limiter: trading, account and token operations must not run unmetered across processes.
   */
  failClosed: boolean;
}

/**
 * Whom a limit counts: `k:<keyId>`, `a:<accountId>` or `ip:<address or IPv6 /64>`; an API key's
 * unsigned requests (market data) `k:<keyId>@<address or IPv6 /64>`.
 */
export interface LimitTarget {
  policy: Policy;
  subject: string;
  accountId?: string;
}

export type Caller =
  | {
      kind: 'apiKey';
      keyId: string;
      accountId: string;
      /**
       * The sender's address group, when the request was not signed. A bare key proves nothing
       * (anyone who saw the key id can send it), so its unsigned requests are counted per key and
       * per sending network: a stranger's flood then spends (and suspends) its own share, never the
       * owner's budget for its signed or unsigned requests. Raised (partner) limits do not apply
       * to them: at most the default limit of the category.
       */
      unsignedFrom?: string;
    }
  | { kind: 'session'; accountId: string }
  | { kind: 'anonymous'; clientGroup: string; /** Exempt from the unauthenticated ceilings (DDoS guard's exempt list). */ exempt: boolean };

/** Never limited: infrastructure probes (load balancers, Prometheus). */
const EXEMPT_PATHS = new Set(['/health', '/metrics']);

const FAIL_CLOSED: ReadonlySet<string> = new Set<RateCategory>(['trading', 'account', 'tokens']);

export function categoryPolicy(category: RateCategory, limits: CategoryLimits): Policy {
  return { name: category, limit: limits[category], windowMs: WINDOW_MS, failClosed: FAIL_CLOSED.has(category) };
}

/**
 * The limit a request falls under, or null when it is not limited.
 * - A categorised path: the category's limit (with the account's partner overrides), counted per
 *   API key, per account for sessions, per client address when unauthenticated.
 * - Unauthenticated requests elsewhere: tight per-address ceilings, tighter for sign-in (`signin`,
 *   /api/v1/auth/*) than for other public routes (`public`); not for exempt addresses.
 * - Authenticated requests on uncategorised paths (admin, audit, sandbox) are not limited here,
 *   unless the caller gives `category` (the HTTP stage counts refused ones as `account`).
 * Authenticated traffic is never counted per address: many keys behind one address are not a crowd.
 */
export function targetFor(path: string, caller: Caller, limits: CategoryLimits, config: Pick<RateLimitConfig, 'signinPerIp' | 'publicPerIp'>, category: RateCategory | null = categoryOf(path)): LimitTarget | null {
  if (caller.kind === 'anonymous') {
    if (EXEMPT_PATHS.has(path)) return null;
    const subject = `ip:${caller.clientGroup}`;
    if (category) return { policy: categoryPolicy(category, DEFAULT_LIMITS), subject };
    if (caller.exempt) return null;
    if (under(path, '/api/v1/auth')) return { policy: { name: 'signin', limit: config.signinPerIp, windowMs: WINDOW_MS, failClosed: false }, subject };
    return { policy: { name: 'public', limit: config.publicPerIp, windowMs: WINDOW_MS, failClosed: false }, subject };
  }
  if (!category) return null;
  if (caller.kind === 'apiKey' && caller.unsignedFrom !== undefined) {
    // Raised (partner) limits are for requests that prove the key's secret: anyone who saw the key
    // id would otherwise get them, per address. Lowered ones still apply.
    return { policy: categoryPolicy(category, { ...limits, [category]: Math.min(limits[category], DEFAULT_LIMITS[category]) }), subject: `k:${caller.keyId}@${caller.unsignedFrom}`, accountId: caller.accountId };
  }
  const subject = caller.kind === 'apiKey' ? `k:${caller.keyId}` : `a:${caller.accountId}`;
  return { policy: categoryPolicy(category, limits), subject, accountId: caller.accountId };
}
