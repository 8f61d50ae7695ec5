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
  rate_limit_overrides: RateLimitOverridesTable;
  ip_blocks: IpBlocksTable;
}
