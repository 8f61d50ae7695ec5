import type { CallOptions, Requester } from '../core/requester.js';
import { assertDecimal, type Decimal } from './common.js';

export interface FaucetRequest {
  asset: string;
  amount: Decimal;
}

export interface FaucetResult {
  asset: string;
  amount: Decimal;
  /** The available balance after the credit. */
  available: Decimal;
}

/** Sandbox only (absent in live). */
export class SandboxApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `POST /api/v1/sandbox/faucet`: bounded per call and per day. Not retried automatically. */
  faucet(request: FaucetRequest, options?: CallOptions): Promise<FaucetResult> {
    assertDecimal('amount', request.amount);
    return this.#requester.call({ method: 'POST', path: '/api/v1/sandbox/faucet', body: request, auth: 'any', options });
  }
}
