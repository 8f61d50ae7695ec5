import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import { assertDecimal, type Decimal, type EpochMs } from './common.js';
import type { Market } from './market.js';

export interface CreateTokenRequest {
  /** 1–64 characters. */
  name: string;
  /** 2–10 upper-case letters or digits, unique. */
  symbol: string;
  /** 0–9 (an order moves at most 2^63-1 minor units; the server refuses more with `validation_failed`). */
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
  /** Tokens after this position (pass the previous page's `next`). */
  before?: string;
}

/** A page of `GET /api/v1/tokens`, newest first. */
export interface TokensPage {
  tokens: Token[];
  /** The cursor to pass as `before` for the next page; null on the last page. */
  next: string | null;
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

  /** `GET /api/v1/tokens`: one page, newest first (the server answers `{ tokens, next }`; this returns the list). */
  async list(query: TokensQuery = {}, options?: CallOptions): Promise<Token[]> {
    return (await this.page(query, options)).tokens;
  }

  /** `GET /api/v1/tokens` as a page: the tokens and the `next` cursor to pass as `before`. */
  async page(query: TokensQuery = {}, options?: CallOptions): Promise<TokensPage> {
    const page = await this.#requester.call<TokensPage>({ method: 'GET', path: '/api/v1/tokens', query, list: 'tokens', auth: 'any', options });
    return { tokens: page.tokens, next: page.next ?? null };
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
