import type { CallOptions, Requester } from '../core/requester.js';
import type { EpochMs } from './common.js';

export interface ServerTime {
  serverTime: EpochMs;
}

export interface Health {
  status: 'ok';
  store: boolean;
  state: boolean;
}

export interface Jwks {
  keys: Array<{ kid: string; kty: string; alg?: string; use?: string; n?: string; e?: string }>;
}

/** Public, unauthenticated routes. */
export class SystemApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `GET /api/v1/time` */
  time(options?: CallOptions): Promise<ServerTime> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/time', auth: 'none', options });
  }

  /** `GET /health`: resolves when ready, throws `service_unavailable` when not. */
  health(options?: CallOptions): Promise<Health> {
    return this.#requester.call({ method: 'GET', path: '/health', auth: 'none', options });
  }

  /** `GET /.well-known/jwks.json`: the public keys that verify access tokens. */
  jwks(options?: CallOptions): Promise<Jwks> {
    return this.#requester.call({ method: 'GET', path: '/.well-known/jwks.json', auth: 'none', options });
  }
}
