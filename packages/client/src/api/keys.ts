import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import type { EpochMs, Scope } from './common.js';

export type KeyType = 'hmac' | 'ed25519';

export interface CreateKeyRequest {
  label: string;
  scopes: Scope[];
  /** At most 10 IPv4/IPv6 addresses or CIDR ranges; empty means any address. Required with `withdrawals:write`. */
  ipWhitelist?: string[];
  /** ISO 3166-1 alpha-2 country codes. */
  allowedCountries?: string[];
  /** Default 90. */
  expiresInDays?: number;
  /** Default `hmac`. */
  type?: KeyType;
  /** ed25519 keys: your public key (see `generateEd25519KeyPair`); the server then holds no secret at all. */
  publicKey?: string;
}

export type KeyStatus = 'active' | 'suspended' | 'revoked' | 'expired' | (string & {});

export interface ApiKeyInfo {
  id: string;
  label: string;
  type: KeyType;
  /** The first characters of the key, for display (`md_test_3xT…`). */
  prefix?: string;
  scopes: Scope[];
  ipWhitelist: string[];
  allowedCountries: string[];
  status?: KeyStatus;
  createdAt: EpochMs;
  expiresAt: EpochMs | null;
  lastUsedAt?: EpochMs | null;
}

/** `POST /api/v1/keys` and `/regenerate`: the only answers that carry the secret. Store it now. */
export interface CreatedKey extends ApiKeyInfo {
  /** `md_test_…` in sandbox, `md_live_…` in live. */
  apiKey: string;
  /** HMAC keys only; shown once, never again. */
  apiSecret?: string;
}

/** PATCH narrows, never widens: scopes can only be removed. */
export interface UpdateKeyRequest {
  label?: string;
  scopes?: Scope[];
  ipWhitelist?: string[];
  allowedCountries?: string[];
}

export interface RegenerateKeyRequest {
  /** How long the previous secret keeps working, in seconds (0–86400; default 0). */
  graceSeconds?: number;
}

/** API-key management: a signed-in session only (an API key can never create or widen keys). */
export class KeysApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `POST /api/v1/keys`. The answer holds `apiSecret` once: keep it (e.g. in MOONDRAFT_API_SECRET). */
  create(request: CreateKeyRequest, options?: CallOptions): Promise<CreatedKey> {
    return this.#requester.call({ method: 'POST', path: '/api/v1/keys', body: request, auth: 'session', options });
  }

  /** `GET /api/v1/keys` */
  list(options?: CallOptions): Promise<ApiKeyInfo[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/keys', auth: 'session', options });
  }

  /** `GET /api/v1/keys/:id` */
  get(id: string, options?: CallOptions): Promise<ApiKeyInfo> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/keys/${pathParam(id)}`, auth: 'session', options });
  }

  /** `PATCH /api/v1/keys/:id` */
  update(id: string, patch: UpdateKeyRequest, options?: CallOptions): Promise<ApiKeyInfo> {
    return this.#requester.call({ method: 'PATCH', path: `/api/v1/keys/${pathParam(id)}`, body: patch, auth: 'session', options });
  }

  /** `POST /api/v1/keys/:id/regenerate`: a new secret, shown once. */
  regenerate(id: string, request?: RegenerateKeyRequest, options?: CallOptions): Promise<CreatedKey> {
    return this.#requester.call({ method: 'POST', path: `/api/v1/keys/${pathParam(id)}/regenerate`, body: request, auth: 'session', options });
  }

  /** `DELETE /api/v1/keys/:id`: revoked at once, on every server process. */
  revoke(id: string, options?: CallOptions): Promise<void> {
    return this.#requester.call({ method: 'DELETE', path: `/api/v1/keys/${pathParam(id)}`, auth: 'session', options });
  }
}
