import type { CallOptions, Requester } from '../core/requester.js';
import { assertDecimal, type Chain, type Decimal, type EpochMs, type Role } from './common.js';

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
  total?: Decimal;
}

export interface PortfolioHolding {
  asset: string;
  quantity: Decimal;
  price: Decimal | null;
  value: Decimal | null;
}

export interface Portfolio {
  /** Total value in the quote asset (USDC) at last prices. */
  totalValue: Decimal;
  quoteAsset: string;
  holdings: PortfolioHolding[];
}

export interface WithdrawalRequest {
  asset: string;
  amount: Decimal;
  /** EVM (checksummed) or Solana (base58) address, per the asset's chain. */
  address: string;
}

export type WithdrawalStatus = 'pending' | 'approved' | 'sent' | 'rejected' | 'cancelled' | (string & {});

export interface Withdrawal {
  id: string;
  asset: string;
  amount: Decimal;
  address: string;
  status: WithdrawalStatus;
  txHash?: string | null;
  createdAt: EpochMs;
  updatedAt?: EpochMs;
}

export interface WithdrawalsQuery {
  status?: WithdrawalStatus;
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

  /** `GET /api/v1/account/balances` */
  balances(options?: CallOptions): Promise<Balance[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/account/balances', auth: 'any', options });
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

  /** `GET /api/v1/account/withdrawals` */
  list(query: WithdrawalsQuery = {}, options?: CallOptions): Promise<Withdrawal[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/account/withdrawals', query, auth: 'any', options });
  }
}
