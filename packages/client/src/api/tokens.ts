import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import { assertDecimal, type Decimal, type EpochMs } from './common.js';

export interface CreateTokenRequest {
  /** 1–64 characters. */
  name: string;
  /** 2–10 upper-case letters or digits, unique. */
  symbol: string;
  /** 0–18. */
  decimals: number;
  /** Whole tokens, as a decimal string. */
  supply: Decimal;
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
  supply: Decimal;
  /** Wallet or account id of the creator. */
  creator: string;
  description?: string | null;
  website?: string | null;
  imageUrl?: string | null;
  /** The market listed with it, `SYMBOL-USDC`. */
  market?: string;
  createdAt: EpochMs;
}

/** Token launches (`tokens:write`; 10 requests/s). */
export class TokensApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `POST /api/v1/tokens`. Not retried on 5xx or network errors; a retry of a taken launch would answer `conflict`. */
  create(request: CreateTokenRequest, options?: CallOptions): Promise<Token> {
    assertDecimal('supply', request.supply);
    return this.#requester.call({ method: 'POST', path: '/api/v1/tokens', body: request, auth: 'any', options });
  }

  /** `GET /api/v1/tokens` */
  list(options?: CallOptions): Promise<Token[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/tokens', auth: 'any', options });
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
