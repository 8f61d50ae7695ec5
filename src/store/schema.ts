/**
 * Table types for Kysely. Conventions that hold on both dialects:
 * - ids are prefixed text (`acc_…`, see lib/ids.ts);
 * - times are epoch milliseconds (`bigint` columns, read as JS numbers);
 * - money and quantities are integer minor units stored as text (SQLite) / numeric(39,0)
 *   (PostgreSQL), read as decimal strings and converted with BigInt() at the repository;
 * - booleans are integers 0/1.
 * Each feature appends its tables below, with a migration in store/migrations.
 */
export interface AccountsTable {
  id: string;
  /** Canonical wallet address: lowercase hex for Ethereum, base58 as-is for Solana. */
  wallet: string;
  chain: 'ethereum' | 'solana';
  role: string;
  created_at: number;
  updated_at: number;
}

export interface ApiKeysTable {
  id: string;
  account_id: string;
  label: string;
  type: 'hmac' | 'ed25519';
  environment: 'sandbox' | 'live';
  /** SHA-256 hex of the API key: the only stored form of the key. */
  key_hash: string;
  key_prefix: string;
  /** Keyring ciphertext of the hmac secret (AAD = key id); null for ed25519 and once revoked. */
  secret_enc: string | null;
  /** ed25519 public key, 32 bytes as hex. */
  public_key: string | null;
  /** The credential replaced by the last regeneration, valid until prev_valid_until. */
  prev_secret_enc: string | null;
  prev_public_key: string | null;
  prev_valid_until: number | null;
  /** JSON arrays. */
  scopes: string;
  ip_whitelist: string;
  allowed_countries: string;
  lifetime_days: number;
  expires_at: number;
  /** Bumped on every change; processes compare it with shared state to drop stale cached copies. */
  version: number;
  revoked_at: number | null;
  suspended_at: number | null;
  suspended_reason: string | null;
  rotation_reminded_at: number | null;
  regenerated_at: number | null;
  last_used_at: number | null;
  last_signed_at: number | null;
  created_at: number;
  updated_at: number;
}

/** Partner rate limits per account (requests per second; null = the API.md default). */
export interface RateLimitOverridesTable {
  account_id: string;
  market: number | null;
  trading: number | null;
  account: number | null;
  tokens: number | null;
  updated_at: number;
  updated_by: string;
}

/** Administrator IP blocks (automatic blocks live in shared state only). */
export interface IpBlocksTable {
  target: string;
  reason: string;
  created_at: number;
  expires_at: number | null;
  created_by: string;
}

export interface Database {
  accounts: AccountsTable;
  api_keys: ApiKeysTable;
}

// Identity (0010): interface declaration merging adds the tables without editing the block above.
export interface Database {
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
}

/** A wallet sign-in session (identity). */
export interface SessionsTable {
  id: string;
  account_id: string;
  chain: 'ethereum' | 'solana';
  /** Epoch ms of the sign-in that started the session. */
  auth_time: number;
  created_at: number;
  /** Updated at most once a minute per session, off the response path. */
  last_used_at: number;
  /** Client address truncated to its /24 (IPv4) or /48 (IPv6) network. */
  ip: string;
  user_agent: string;
  /** Absolute end of the session's refresh tokens. */
  refresh_expires_at: number;
  /** Idle end: pushed forward by each refresh. */
  idle_expires_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
}

/** Refresh tokens by SHA-256 hash; `spent_at` set when rotated (presenting it again is reuse). */
export interface RefreshTokensTable {
  token_hash: string;
  session_id: string;
  created_at: number;
  spent_at: number | null;
}

/**
 * The audit log (src/audit). One row per event, in one total order (`seq`) linked by hashes.
 * `at`, `type`, `category`, `account_id`, `actor_id` and `outcome` are clear and filterable; the
 * `*_enc` columns are keyring ciphertexts (AES-256-GCM, AAD = `<id>|<field>`).
 */
export interface AuditEventsTable {
  id: string;
  seq: number;
  at: number;
  type: string;
  category: string;
  account_id: string | null;
  actor_id: string | null;
  outcome: string;
  details_enc: string;
  ip_enc: string | null;
  user_agent_enc: string | null;
  prev_hash: string;
  hash: string;
}

/** The single row (id 1) every append locks: the last seq and hash of the chain. */
export interface AuditChainHeadTable {
  id: number;
  seq: number;
  hash: string;
  updated_at: number;
}

/** Signed statements "record `seq` has hash `hash`"; `anchor` ones also mark a retention purge. */
export interface AuditCheckpointsTable {
  id: string;
  seq: number;
  hash: string;
  at: number;
  kind: string;
  kid: string;
  jws: string;
}

/** Public keys that signed checkpoints, kept after the keyset drops them (see audit/checkpoints.ts). */
export interface AuditSigningKeysTable {
  kid: string;
  jwk: string;
  jkt: string;
  first_used_at: number;
}

export interface Database {
  accounts: AccountsTable;
  audit_events: AuditEventsTable;
  audit_chain_head: AuditChainHeadTable;
  audit_checkpoints: AuditCheckpointsTable;
  audit_signing_keys: AuditSigningKeysTable;
  rate_limit_overrides: RateLimitOverridesTable;
  ip_blocks: IpBlocksTable;
}
