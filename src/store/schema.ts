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

export interface Database {
  accounts: AccountsTable;
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
