import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import type { EpochMs, Scope } from './common.js';

export type KeyType = 'hmac' | 'ed25519';

export interface CreateKeyRequest {
  label: string;
  scopes: Scope[];
  /** At most 10 IPv4/IPv6 addresses or CIDR ranges; empty means any address. Required with `withdrawals:write`. */
  ipWhitelist?: string[];
  /** ISO 3166-1 alpha-2 country codes; when set, addresses of unknown country are refused. */
  allowedCountries?: string[];
  /** Default 90. */
  expiresInDays?: number;
  /** Default `hmac`. */
  type?: KeyType;
  /** ed25519 keys: your public key, 32 bytes hex (see `generateEd25519KeyPair`); the server then holds no secret at all. */
  publicKey?: string;
}

export type KeyStatus = 'active' | 'suspended' | 'revoked' | 'expired';

/** An API key as `GET /api/v1/keys/:id` describes it (never its secret). */
export interface ApiKeyInfo {
  id: string;
  label: string;
  type: KeyType;
  environment: 'sandbox' | 'live';
  /** The first characters of the API key, for recognising it. */
  prefix: string;
  status: KeyStatus;
  /** The scopes the key was given. */
  scopes: Scope[];
  /** The scopes in force now: `scopes` capped by the owner's current role (empty once revoked). */
  effectiveScopes: Scope[];
  ipWhitelist: string[];
  allowedCountries: string[];
  /** ed25519 keys: the registered public key (hex). */
  publicKey: string | null;
  createdAt: EpochMs;
  updatedAt: EpochMs;
  expiresAt: EpochMs;
  revokedAt: EpochMs | null;
  suspendedAt: EpochMs | null;
  suspendedReason: string | null;
  regeneratedAt: EpochMs | null;
  /** After a regeneration with a grace period: until when the previous secret or public key still verifies. */
  previousCredentialValidUntil: EpochMs | null;
  lastUsedAt: EpochMs | null;
  lastSignedAt: EpochMs | null;
}

/** `POST /api/v1/keys`: the only answer that carries the API key and (hmac) its secret. Store them now. */
export interface CreatedKey extends ApiKeyInfo {
  /** `md_test_…` in sandbox, `md_live_…` in live. */
  apiKey: string;
  /** HMAC keys only; shown once, never again. */
  apiSecret?: string;
}

/** `POST /api/v1/keys/:id/regenerate`: the key's new state and (hmac) its new secret, shown once. The API key itself is unchanged. */
export interface RegeneratedKey extends ApiKeyInfo {
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
  /** How long the previous secret (or public key) keeps working, in seconds (default 0). */
  gracePeriodSeconds?: number;
  /** ed25519 keys: the new public key (hex). */
  publicKey?: string;
  /** A fresh lifetime (default: the key's current one). */
  expiresInDays?: number;
}

export interface ChecklistItem {
  id: string;
  title: string;
  result: 'pass' | 'fail';
  detail: string;
  advice: string;
  keyIds: string[];
}

/** `GET /api/v1/security/checklist`: "Before Going Live", evaluated on your keys. */
export interface Checklist {
  environment: string;
  passed: number;
  total: number;
  items: ChecklistItem[];
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

  /** `GET /api/v1/keys` (the server answers `{ keys }`; this returns the list). */
  async list(options?: CallOptions): Promise<ApiKeyInfo[]> {
    const { keys } = await this.#requester.call<{ keys: ApiKeyInfo[] }>({ method: 'GET', path: '/api/v1/keys', list: 'keys', auth: 'session', options });
    return keys;
  }

  /** `GET /api/v1/keys/:id` */
  get(id: string, options?: CallOptions): Promise<ApiKeyInfo> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/keys/${pathParam(id)}`, auth: 'session', options });
  }

  /** `PATCH /api/v1/keys/:id` */
  update(id: string, patch: UpdateKeyRequest, options?: CallOptions): Promise<ApiKeyInfo> {
    return this.#requester.call({ method: 'PATCH', path: `/api/v1/keys/${pathParam(id)}`, body: patch, auth: 'session', options });
  }

  /** `POST /api/v1/keys/:id/regenerate`: a new secret (shown once) or, for ed25519, a new public key. */
  regenerate(id: string, request: RegenerateKeyRequest = {}, options?: CallOptions): Promise<RegeneratedKey> {
    return this.#requester.call({ method: 'POST', path: `/api/v1/keys/${pathParam(id)}/regenerate`, body: request, auth: 'session', options });
  }

  /** `DELETE /api/v1/keys/:id`: revoked at once, on every server process; answers the revoked key. */
  revoke(id: string, options?: CallOptions): Promise<ApiKeyInfo> {
    return this.#requester.call({ method: 'DELETE', path: `/api/v1/keys/${pathParam(id)}`, auth: 'session', options });
  }

  /** `GET /api/v1/security/checklist`: the "Before Going Live" checklist evaluated on your keys. */
  checklist(options?: CallOptions): Promise<Checklist> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/security/checklist', auth: 'session', options });
  }
}
