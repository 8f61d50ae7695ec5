import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import { assertDecimal, type Chain, type Decimal, type EpochMs, type Role } from './common.js';
import { newClientOrderId, type Position } from './trading.js';

/** `GET /api/v1/account`. */
export interface Account {
  id: string;
  wallet: string;
  chain: Chain | (string & {});
  /** The role in force now. */
  role: Role;
  createdAt: EpochMs;
}

export interface Balance {
  asset: string;
  available: Decimal;
  /** Held for open orders and pending withdrawals. */
  held: Decimal;
  /** `available + held`. */
  total: Decimal;
}

/** `GET /api/v1/account/portfolio`: everything valued in `valuationAsset` (USDC) at last prices. */
export interface Portfolio {
  /** The asset values are in: `USDC`. */
  valuationAsset: string;
  /** USDC available + held. */
  cash: Decimal;
  /** The value of the priced positions. */
  positionsValue: Decimal;
  /** `cash + positionsValue`. */
  totalValue: Decimal;
  /** Signed. */
  realizedPnl: Decimal;
  /** Signed. */
  unrealizedPnl: Decimal;
  /** Assets held that have no price yet (left out of the values). */
  unpriced: string[];
  positions: Position[];
}

/** `GET /api/v1/account/trading-limit`: the daily (rolling 24 h) trading limit, in USDC, and what is left. */
export interface TradingLimit {
  /** The asset the amounts are in: `USDC`. */
  asset: string;
  /** Notional allowed over a rolling 24 h. */
  limit: Decimal;
  /** Whether an admin override sets the limit (else the role's default). */
  overridden: boolean;
  /** Notional traded in the last 24 h. */
  traded24h: Decimal;
  /** Notional of resting orders (they may still trade, so they count). */
  open: Decimal;
  /** What new orders may still use: `limit - traded24h - open`, never below 0. */
  remaining: Decimal;
  /**
   * Most orders the account may have resting per market (an admin override, else the server's
   * default); one more resting order is 422 `open_orders_limit_exceeded`.
   */
  maxOpenOrders: number;
}

export interface WithdrawalRequest {
  asset: string;
  amount: Decimal;
  /** EVM (checksummed) or Solana (base58) address, per the asset's chain. */
  address: string;
  /**
   * Your id for this request (1–64 of `A-Z a-z 0-9 _ . : -`), unique per account: sent again, the
   * server answers the original withdrawal instead of taking a second. `create` generates one when
   * you give none.
   */
  clientWithdrawalId?: string;
}

export type WithdrawalStatus = 'pending' | 'approved' | 'sent' | 'rejected' | 'cancelled';

export interface Withdrawal {
  id: string;
  asset: string;
  amount: Decimal;
  /** The USDC value counted against the rolling-24 h limit. */
  usdcValue: Decimal;
  chain: 'evm' | 'solana' | (string & {});
  address: string;
  status: WithdrawalStatus | (string & {});
  txHash: string | null;
  /** Why it was rejected, when it was. */
  reason: string | null;
  /** The id the request was given (the SDK generates one), or null. */
  clientWithdrawalId: string | null;
  createdAt: EpochMs;
  updatedAt: EpochMs;
}

/** `GET /api/v1/account/withdrawal-limit`: the verification tier and its rolling-24 h withdrawal limit. */
export interface WithdrawalLimit {
  /** Verification tier, 0–2 (set by an admin). */
  tier: number;
  /** Allowed over a rolling 24 h, in `valuationAsset`. */
  limit: Decimal;
  /** Counted in the last 24 h (pending, approved and sent withdrawals). */
  used: Decimal;
  remaining: Decimal;
  /**
   * The auto-approval budget: a withdrawal is approved (and sent) without an admin while the
   * withdrawals approved that way in the rolling 24 h, it included, are worth at most this; beyond
   * it the withdrawal stays `pending` until an admin decides (so splitting one does not skip review).
   */
  autoApproveUpTo: Decimal;
  /** The asset the amounts are in: `USDC`. */
  valuationAsset: string;
}

export type WithdrawalChain = 'evm' | 'solana';

/** A saved withdrawal address. */
export interface WithdrawalAddress {
  id: string;
  chain: WithdrawalChain | (string & {});
  /** As stored: EVM addresses checksummed. */
  address: string;
  label: string | null;
  /** When the address may first be used (saving starts a hold, 24 h by default). */
  usableAt: EpochMs;
  createdAt: EpochMs;
}

/** `GET /api/v1/account/withdrawal-addresses`: the address book and whether withdrawals are bound to it. */
export interface AddressBook {
  /** Whether withdrawals may only go to saved addresses past their hold. */
  enabled: boolean;
  /** When a requested switch-off takes effect; null when none is pending. */
  disablesAt: EpochMs | null;
  addresses: WithdrawalAddress[];
}

export interface SaveAddressRequest {
  chain: WithdrawalChain;
  address: string;
  /** At most 64 characters. */
  label?: string;
}

export interface WithdrawalsQuery {
  status?: WithdrawalStatus;
  /** A withdrawal id: withdrawals older than it. */
  before?: string;
  /** 1–500 (default 100). */
  limit?: number;
}

/** The caller's account (`account:read`, `portfolio:read`; 25 requests/s). */
export class AccountApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `GET /api/v1/account` */
  get(options?: CallOptions): Promise<Account> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/account', auth: 'any', options });
  }

  /** `GET /api/v1/account/balances` (the server answers `{ balances }`; this returns the list). */
  async balances(options?: CallOptions): Promise<Balance[]> {
    const { balances } = await this.#requester.call<{ balances: Balance[] }>({ method: 'GET', path: '/api/v1/account/balances', list: 'balances', auth: 'any', options });
    return balances;
  }

  /** `GET /api/v1/account/portfolio` */
  portfolio(options?: CallOptions): Promise<Portfolio> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/account/portfolio', auth: 'any', options });
  }

  /** `GET /api/v1/account/trading-limit`: the daily trading limit (USDC) and what is left of it. */
  tradingLimit(options?: CallOptions): Promise<TradingLimit> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/account/trading-limit', auth: 'any', options });
  }
}

/**
 * Withdrawals and the withdrawal address book: reading needs `account:read`, changing `withdrawals:write`.
 * Over a session, requesting a withdrawal, saving an address and switching the address book need a
 * sign-in within the last 5 minutes (`step_up_required`).
 */
export class WithdrawalsApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /**
   * `POST /api/v1/account/withdrawals`. Safe to retry: the request carries a `clientWithdrawalId`
   * (yours, or one generated here), so a retry after a lost answer (a network error or a 5xx) gets
   * the original withdrawal back, never a second one. Call again with the same id to find out what
   * became of a request whose answer you never saw: a failed call's error names it
   * (`error.clientWithdrawalId`), the generated one included.
   */
  create(request: WithdrawalRequest, options?: CallOptions): Promise<Withdrawal> {
    assertDecimal('amount', request.amount);
    const body: WithdrawalRequest = { ...request, clientWithdrawalId: request.clientWithdrawalId ?? newClientOrderId() };
    return this.#requester.call({ method: 'POST', path: '/api/v1/account/withdrawals', body, auth: 'any', idempotent: true, clientIds: { clientWithdrawalId: body.clientWithdrawalId! }, options });
  }

  /** `GET /api/v1/account/withdrawals`: newest first (the server answers `{ withdrawals }`; this returns the list). */
  async list(query: WithdrawalsQuery = {}, options?: CallOptions): Promise<Withdrawal[]> {
    const { withdrawals } = await this.#requester.call<{ withdrawals: Withdrawal[] }>({ method: 'GET', path: '/api/v1/account/withdrawals', query, list: 'withdrawals', auth: 'any', options });
    return withdrawals;
  }

  /** `GET /api/v1/account/withdrawals/:id`: one of your withdrawals (`not_found` for anyone else's). */
  get(id: string, options?: CallOptions): Promise<Withdrawal> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/account/withdrawals/${pathParam(id)}`, auth: 'any', options });
  }

  /**
   * `POST /api/v1/account/withdrawals/:id/cancel`: cancels a pending withdrawal and releases its funds;
   * answers it. `conflict` once it is decided (approved, sent, rejected or already cancelled).
   * Not retried on 5xx or lost answers, like every POST without an idempotency key: read it back
   * with `get(id)` instead.
   */
  cancel(id: string, options?: CallOptions): Promise<Withdrawal> {
    return this.#requester.call({ method: 'POST', path: `/api/v1/account/withdrawals/${pathParam(id)}/cancel`, auth: 'any', options });
  }

  /** `GET /api/v1/account/withdrawal-limit`: your tier, its rolling-24 h limit (USDC) and what is left. */
  limit(options?: CallOptions): Promise<WithdrawalLimit> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/account/withdrawal-limit', auth: 'any', options });
  }

  /** `GET /api/v1/account/withdrawal-addresses`: whether the address book is on, and the saved addresses. */
  addressBook(options?: CallOptions): Promise<AddressBook> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/account/withdrawal-addresses', auth: 'any', options });
  }

  /**
   * `POST /api/v1/account/withdrawal-addresses`: saves an address, usable after the hold (`usableAt`).
   * `conflict` when it is saved already. Not retried on 5xx or lost answers: read `addressBook()` instead.
   */
  saveAddress(request: SaveAddressRequest, options?: CallOptions): Promise<WithdrawalAddress> {
    return this.#requester.call({ method: 'POST', path: '/api/v1/account/withdrawal-addresses', body: request, auth: 'any', options });
  }

  /** `DELETE /api/v1/account/withdrawal-addresses/:id` (a retry after a lost answer may report `not_found`). */
  async removeAddress(id: string, options?: CallOptions): Promise<void> {
    await this.#requester.call({ method: 'DELETE', path: `/api/v1/account/withdrawal-addresses/${pathParam(id)}`, auth: 'any', answer: 'any', options });
  }

  /**
   * `PUT /api/v1/account/withdrawal-addresses/settings`: turns the address book on (at once) or off
   * (after the hold: see `disablesAt`); answers the address book.
   */
  setAddressBook(enabled: boolean, options?: CallOptions): Promise<AddressBook> {
    if (typeof enabled !== 'boolean') throw new TypeError('enabled must be true or false');
    return this.#requester.call({ method: 'PUT', path: '/api/v1/account/withdrawal-addresses/settings', body: { enabled }, auth: 'any', options });
  }
}
