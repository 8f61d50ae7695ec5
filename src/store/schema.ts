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
}
