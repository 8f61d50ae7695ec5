import type { CallOptions, Requester } from '../core/requester.js';
import { assertDecimal, type Chain, type Decimal, type EpochMs, type Role } from './common.js';
import type { Position } from './trading.js';

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

export interface WithdrawalRequest {
  asset: string;
  amount: Decimal;
  /** EVM (checksummed) or Solana (base58) address, per the asset's chain. */
  address: string;
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
  createdAt: EpochMs;
  updatedAt: EpochMs;
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
    const { balances } = await this.#requester.call<{ balances: Balance[] }>({ method: 'GET', path: '/api/v1/account/balances', auth: 'any', options });
    return balances;
  }

  /** `GET /api/v1/account/portfolio` */
  portfolio(options?: CallOptions): Promise<Portfolio> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/account/portfolio', auth: 'any', options });
  }
}

/** Withdrawals (`withdrawals:write`). Over a session they need a recent sign-in (`step_up_required`). */
export class WithdrawalsApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `POST /api/v1/account/withdrawals`. Never retried automatically: a lost answer may hide a request that was taken. */
  create(request: WithdrawalRequest, options?: CallOptions): Promise<Withdrawal> {
    assertDecimal('amount', request.amount);
    return this.#requester.call({ method: 'POST', path: '/api/v1/account/withdrawals', body: request, auth: 'any', options });
  }

  /** `GET /api/v1/account/withdrawals`: newest first (the server answers `{ withdrawals }`; this returns the list). */
  async list(query: WithdrawalsQuery = {}, options?: CallOptions): Promise<Withdrawal[]> {
    const { withdrawals } = await this.#requester.call<{ withdrawals: Withdrawal[] }>({ method: 'GET', path: '/api/v1/account/withdrawals', query, auth: 'any', options });
    return withdrawals;
  }
}
