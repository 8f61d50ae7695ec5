/**
 * The typed audit events every feature writes through `services.audit`. The event type names its
 * category by its first segment (`auth.…`, `access.…`, `trading.…`, `admin.…`, `security.…`,
 * `audit.…`); the details of each type are typed below so a caller cannot forget what identifies
 * the action. Details hold identifiers and decisions, never secrets or request bodies: amounts and
 * prices are decimal strings as at the API edge.
 */

/** A JSON value allowed inside details. */
export type AuditValue = string | number | boolean | null | readonly AuditValue[] | { readonly [key: string]: AuditValue | undefined };

/** Further identifying fields a feature may add to the typed ones. */
type More = { readonly [key: string]: AuditValue | undefined };

export const AUDIT_CATEGORIES = ['authentication', 'access', 'trading', 'admin', 'security', 'audit'] as const;
export type AuditCategory = (typeof AUDIT_CATEGORIES)[number];

/** `success`: done; `failure`: attempted and failed; `denied`: refused by a security decision. */
export const AUDIT_OUTCOMES = ['success', 'failure', 'denied'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export interface AuditEventDetails {
  // Authentication (mostly recorded from services.events, see security-events.ts)
  'auth.signin.succeeded': { sessionId: string; chain: string; wallet: string } & More;
  'auth.signin.failed': { reason: string; wallet?: string | undefined } & More;
  'auth.token.issued': { sessionId: string; tokenId?: string | undefined } & More;
  'auth.token.refreshed': { sessionId: string } & More;
  'auth.refresh_token_reused': { sessionId: string } & More;
  /** sessionId: the session ended; bySessionId: the session that ended it, when a person or admin did. */
  'auth.session.revoked': { sessionId: string; by: string; bySessionId?: string | undefined; adminId?: string | undefined } & More;
  'auth.failed': { code: string; keyId?: string | undefined } & More;

  // API access: one per request, buffered (see access.ts), and stored sealed in batches: one
  // `access.batch` record per account and written batch, which the auditor's views expand back
  // into one `access.request` view per request (see seal.ts).
  'access.request': { method: string; route: string; status: number; latencyMs: number; keyId?: string | undefined; sessionId?: string | undefined };
  'access.batch': { fields: readonly string[]; entries: readonly (readonly AuditValue[])[] };
  // The refusals a flood is made of (a blocked address, an anonymous client's 429s), counted per
  // client network and window instead of one entry each (see refusals.ts).
  'access.refused': { refusal: string; status: number | null; count: number; from: number; to: number; network?: string | undefined };

  // Trading: written in the transaction of the change (recordIn)
  'trading.order.placed': { orderId: string; market: string; side: string; orderType: string; quantity: string; price?: string | undefined; clientOrderId?: string | undefined } & More;
  'trading.order.cancelled': { orderId: string; market: string; reason?: string | undefined } & More;
  'trading.order.rejected': { market: string; reason: string } & More;
  'trading.fill': { fillId: string; orderId: string; market: string; side: string; price: string; quantity: string } & More;
  'trading.position.closed': { asset: string; quantity: string } & More;
  'trading.withdrawal.requested': { withdrawalId: string; asset: string; amount: string } & More;
  'trading.withdrawal.updated': { withdrawalId: string; status: string } & More;
  'trading.token.created': { symbol: string; name: string; decimals: number; supply: string } & More;
  'trading.token.updated': { symbol: string; changed: readonly string[] } & More;
  'trading.faucet': { asset: string; amount: string } & More;
  'trading.withdrawal.address_added': { addressId: string; chain: string; address: string; usableAt: number } & More;
  'trading.withdrawal.address_removed': { addressId: string; chain: string; address: string } & More;
  'trading.withdrawal.address_book': { enabled: boolean; effectiveAt: number } & More;

  // Admin actions (the actor is `actorId`, the account acted on is `accountId`)
  'admin.role.changed': { from: string; to: string; by: string } & More;
  'admin.limits.changed': { limits: { readonly [category: string]: number | null } } & More;
  'admin.account.blocked': { reason?: string | undefined } & More;
  'admin.account.unblocked': More;
  'admin.account.isolated': { reason?: string | undefined } & More;
  'admin.account.released': More;
  'admin.ip.blocked': { target: string; reason: string; by?: string | undefined } & More;
  'admin.ip.unblocked': { target: string; reason: string; by?: string | undefined } & More;
  'admin.trading.halted': { market?: string | undefined; reason?: string | undefined } & More;
  'admin.trading.resumed': { market?: string | undefined } & More;
  'admin.reversal': { target: string; reason: string } & More;
  'admin.withdrawal.approved': { withdrawalId: string } & More;
  'admin.withdrawal.rejected': { withdrawalId: string; reason?: string | undefined } & More;
  'admin.withdrawal_tier.changed': { from: number; to: number } & More;
  /** A daily trading-limit override set or cleared (null: the role default applies). */
  'admin.trading_limit.changed': { from: string | null; to: string | null } & More;
  /** An open-orders cap override (orders resting per market) set or cleared (null: MOONDRAFT_MAX_OPEN_ORDERS applies). */
  'admin.open_orders_limit.changed': { from: number | null; to: number | null } & More;
  'admin.asset.created': { symbol: string; name: string; decimals: number; faucet: boolean } & More;
  'admin.market.listed': { market: string; tickSize: string; lotSize: string; minNotional: string; makerFeeBps: number; takerFeeBps: number; relisted: boolean } & More;
  'admin.market.delisted': { market: string; cancelled: number } & More;
  'admin.key.created': { keyId: string; by?: string | undefined } & More;
  'admin.key.updated': { keyId: string; by?: string | undefined } & More;
  'admin.key.regenerated': { keyId: string; by?: string | undefined } & More;
  'admin.key.revoked': { keyId: string; by?: string | undefined } & More;
  'admin.key.suspended': { keyId: string; by?: string | undefined; reason?: string | null } & More;
  'admin.key.unsuspended': { keyId: string; by?: string | undefined } & More;
  'admin.key.rotation_due': { keyId: string } & More;
  'admin.signing_keys.rotated': { kid: string } & More;

  // Automatic security responses
  'security.ratelimit.suspended': { category: string; subject: string; untilMs: number } & More;
  /** A security event this module has no mapping for yet (recorded rather than lost). */
  'security.other': { event: string } & More;

  // The audit log about itself
  'audit.read': { view: 'events' | 'export' | 'verify'; via: 'api' | 'cli'; filters?: { readonly [k: string]: AuditValue | undefined } | undefined; returned?: number | undefined; result?: string | undefined };
  'audit.purged': { cutoff: number; removed: number; throughSeq: number };
  /**
   * Buffered events lost because the buffer was full, or because they could not be sealed
   * (`unsealable`, included in `dropped`); written ahead of the next batch.
   */
  'audit.events_dropped': { dropped: number; unsealable?: number | undefined };
}

export type AuditEventType = keyof AuditEventDetails;

/** Fields every event may carry besides its type and details. */
export interface AuditEventCommon {
  /** Epoch ms; defaults to the clock's now. */
  at?: number | undefined;
  /** The account the event concerns (filterable). */
  accountId?: string | null | undefined;
  /** Who performed it when that is not `accountId` (admin actions; filterable). */
  actorId?: string | null | undefined;
  /** Defaults to `success`. */
  outcome?: AuditOutcome | undefined;
  /** Client address (stored encrypted). Access events store it anonymized. */
  ip?: string | null | undefined;
  /** Stored encrypted, truncated. */
  userAgent?: string | null | undefined;
  requestId?: string | undefined;
}

/** One audit event: `{ type, details, ...common }`, with `details` typed by `type`. */
export type AuditEvent = { [T in AuditEventType]: AuditEventCommon & { type: T; details: AuditEventDetails[T] } }[AuditEventType];

const CATEGORY_BY_PREFIX: Record<string, AuditCategory> = {
  auth: 'authentication',
  access: 'access',
  trading: 'trading',
  admin: 'admin',
  security: 'security',
  audit: 'audit',
};

export function categoryOf(type: AuditEventType): AuditCategory {
  return CATEGORY_BY_PREFIX[type.slice(0, type.indexOf('.'))]!;
}

export function isAuditCategory(value: unknown): value is AuditCategory {
  return typeof value === 'string' && (AUDIT_CATEGORIES as readonly string[]).includes(value);
}

/** A stored event's position in the chain. */
export interface AuditRef {
  id: string;
  seq: number;
}
