import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import { assertDecimal, type Decimal, type EpochMs } from './common.js';
import type { Market } from './market.js';

export interface CreateTokenRequest {
  /** 1–64 characters. */
  name: string;
  /** 2–10 upper-case letters or digits, unique. */
  symbol: string;
  /** 0–18. */
  decimals: number;
  /** Whole tokens, as a decimal string. */
  supply: Decimal;
  /** Where withdrawals of the token go (default `evm`). */
  chain?: 'evm' | 'solana';
  /** At most 1000 characters. */
  description?: string;
  /** https only. */
  website?: string;
  /** https only. */
  imageUrl?: string;
}

export interface UpdateTokenRequest {
  name?: string;
  description?: string | null;
  /** https only. */
  website?: string | null;
  /** https only. */
  imageUrl?: string | null;
}

export interface Token {
  symbol: string;
  name: string;
  decimals: number;
  /** Where withdrawals of the token go. */
  chain: 'evm' | 'solana' | (string & {});
  /** Issued at launch, in tokens. */
  supply: Decimal;
  description: string | null;
  website: string | null;
  imageUrl: string | null;
  /** The market listed with it, `SYMBOL-USDC`. */
  market: string;
  createdAt: EpochMs;
  updatedAt: EpochMs;
}

/** `POST /api/v1/tokens`: the new token and the market listed for it. */
export interface LaunchedToken {
  token: Token;
  market: Market;
}

export interface TokensQuery {
  /** Only the tokens you launched. */
  mine?: boolean;
  /** 1–500 (default 100). */
  limit?: number;
}

/** Token launches (`tokens:write`; 10 requests/s). */
export class TokensApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /**
   * `POST /api/v1/tokens`: answers the token and its new `SYMBOL-USDC` market. Not retried on 5xx or
   * network errors; a retry of a taken launch would answer `conflict`.
   */
  create(request: CreateTokenRequest, options?: CallOptions): Promise<LaunchedToken> {
    assertDecimal('supply', request.supply);
    return this.#requester.call({ method: 'POST', path: '/api/v1/tokens', body: request, auth: 'any', options });
  }

  /** `GET /api/v1/tokens`: newest first (the server answers `{ tokens }`; this returns the list). */
  async list(query: TokensQuery = {}, options?: CallOptions): Promise<Token[]> {
    const { tokens } = await this.#requester.call<{ tokens: Token[] }>({ method: 'GET', path: '/api/v1/tokens', query, list: 'tokens', auth: 'any', options });
    return tokens;
  }

  /** `GET /api/v1/tokens/:symbol` */
  get(symbol: string, options?: CallOptions): Promise<Token> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/tokens/${pathParam(symbol)}`, auth: 'any', options });
  }

  /** `PATCH /api/v1/tokens/:symbol` (its creator only). */
  update(symbol: string, patch: UpdateTokenRequest, options?: CallOptions): Promise<Token> {
    return this.#requester.call({ method: 'PATCH', path: `/api/v1/tokens/${pathParam(symbol)}`, body: patch, auth: 'any', options });
  }
}
