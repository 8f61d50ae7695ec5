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

// ---- trading (migration 0020) ------------------------------------------------------------
/** Money columns arrive as decimal strings (text on SQLite, numeric on PostgreSQL). */
type Money = string;

export interface AssetsTable {
  symbol: string;
  name: string;
  decimals: number;
  /** 1 when the sandbox faucet may dispense it. */
  faucet: number;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

export interface MarketsTable {
  symbol: string;
  base: string;
  quote: string;
  tick_size: Money;
  lot_size: Money;
  min_notional: Money;
  maker_fee_bps: number;
  taker_fee_bps: number;
  status: 'active' | 'delisted';
  /** Bumped by every change to the market's book; in-memory books compare it (scale-out). */
  seq: number;
  trade_seq: number;
  last_price: Money | null;
  last_trade_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface LedgerEntriesTable {
  id: string;
  kind: string;
  ref_id: string | null;
  created_at: number;
}

export interface LedgerPostingsTable {
  entry_id: string;
  line: number;
  owner: string;
  asset: string;
  bucket: 'available' | 'held';
  /** Signed minor units; the lines of one entry sum to zero per asset. */
  amount: Money;
}

export interface BalancesTable {
  owner: string;
  asset: string;
  available: Money;
  held: Money;
  updated_at: number;
  /** Optimistic-concurrency version, +1 on every write. */
  version: number;
}

export interface HoldsTable {
  /** The id of what is held for (`ord_…`, `wdr_…`). */
  id: string;
  owner: string;
  asset: string;
  amount: Money;
  kind: string;
  status: 'active' | 'closed';
  created_at: number;
  updated_at: number;
  /** Optimistic-concurrency version, +1 on every write. */
  version: number;
}

export interface OrdersTable {
  id: string;
  account_id: string;
  market: string;
  side: 'buy' | 'sell';
  type: 'limit' | 'market';
  time_in_force: 'GTC' | 'IOC' | 'FOK';
  stp: string;
  price: Money | null;
  quantity: Money;
  filled: Money;
  /** Quantity still resting (0 once closed). */
  remaining: Money;
  /** Σ fill notional in quote minor units. */
  notional: Money;
  fees: Money;
  status: 'open' | 'partially_filled' | 'filled' | 'cancelled' | 'expired';
  reason: string | null;
  client_order_id: string | null;
  /** Time priority within the market (the market seq when it was accepted). */
  seq: number;
  actor_kind: string;
  actor_id: string;
  cancel_actor_kind: string | null;
  cancel_actor_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface FillsTable {
  id: string;
  market: string;
  trade_seq: number;
  price: Money;
  quantity: Money;
  notional: Money;
  taker_side: 'buy' | 'sell';
  taker_order_id: string;
  maker_order_id: string;
  taker_account_id: string;
  maker_account_id: string;
  taker_fee: Money;
  maker_fee: Money;
  taker_actor_kind: string;
  taker_actor_id: string;
  created_at: number;
}

/**
 * One row per order an account placed and per fill it took part in (a self-trade fill once, as
 * taker): the one per-account index of order and fill history. `sort_key` is the id without its
 * prefix (creation time, then randomness), so an account's new orders and fills sort together.
 */
export interface AccountHistoryTable {
  account_id: string;
  sort_key: string;
  kind: 'order' | 'taker' | 'maker';
  /** The order's or fill's id. */
  id: string;
}

export interface PositionsTable {
  account_id: string;
  asset: string;
  /** Quote (USDC) minor units paid for the current holding, fees included. */
  cost_basis: Money;
  realized_pnl: Money;
  updated_at: number;
  /** Optimistic-concurrency version, +1 on every write. */
  version: number;
}

export interface TradingUsageTable {
  account_id: string;
  /** Epoch minute. */
  minute: number;
  notional: Money;
  /** Optimistic-concurrency version, +1 on every write. */
  version: number;
}

export interface TradingExposureTable {
  account_id: string;
  /** Notional of the account's resting orders (they may still trade). */
  open_notional: Money;
  updated_at: number;
  /** Optimistic-concurrency version, +1 on every write. */
  version: number;
}

export interface TradingLimitsTable {
  account_id: string;
  daily_notional: Money;
  updated_by: string;
  updated_at: number;
}

/** An admin's override of the open-orders cap (orders resting per market) for one account. */
export interface OpenOrdersLimitsTable {
  account_id: string;
  max_open_orders: number;
  updated_by: string;
  updated_at: number;
}

export interface CandlesTable {
  market: string;
  /** 1m, 5m, 1h or 1d. */
  period: string;
  start: number;
  open: Money;
  high: Money;
  low: Money;
  close: Money;
  volume: Money;
  quote_volume: Money;
  trades: number;
}

export interface FaucetGrantsTable {
  id: string;
  account_id: string;
  asset: string;
  amount: Money;
  created_at: number;
}

/** The environment the store belongs to (0150): one row, id 1, written at the first start. */
export interface DeploymentEnvironmentTable {
  id: number;
  env: 'sandbox' | 'live';
  recorded_at: number;
}

export interface Database {
  deployment_environment: DeploymentEnvironmentTable;
  assets: AssetsTable;
  markets: MarketsTable;
  ledger_entries: LedgerEntriesTable;
  ledger_postings: LedgerPostingsTable;
  balances: BalancesTable;
  holds: HoldsTable;
  orders: OrdersTable;
  fills: FillsTable;
  account_history: AccountHistoryTable;
  positions: PositionsTable;
  trading_usage: TradingUsageTable;
  trading_exposure: TradingExposureTable;
  trading_limits: TradingLimitsTable;
  open_orders_limits: OpenOrdersLimitsTable;
  candles: CandlesTable;
  faucet_grants: FaucetGrantsTable;
}

// Token launches and withdrawals (issue 7) -------------------------------------------------------

export interface TokensTable {
  symbol: string;
  name: string;
  /** `evm` or `solana`: where withdrawals of the token go. */
  chain: string;
  /** Minor units credited at launch. */
  supply: Money;
  description: string | null;
  website: string | null;
  image_url: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface WithdrawalSettingsTable {
  account_id: string;
  /** Verification tier 0, 1 or 2. */
  tier: number;
  tier_set_by: string | null;
  /** 1: only saved addresses that are past their hold. */
  address_book: number;
  /** When a requested switch-off takes effect (it waits out the hold, as a new address does). */
  address_book_off_at: number | null;
  updated_at: number;
}

export interface WithdrawalAddressesTable {
  id: string;
  account_id: string;
  chain: string;
  address: string;
  label: string | null;
  usable_at: number;
  created_at: number;
}

export interface WithdrawalsTable {
  id: string;
  account_id: string;
  asset: string;
  amount: Money;
  /** USDC minor units counted against the rolling-24 h limit. */
  usdc_value: Money;
  chain: string;
  address: string;
  /** pending | approved | sent | rejected | cancelled */
  status: string;
  tx_hash: string | null;
  reason: string | null;
  decided_by: string | null;
  /** Set by the one process that hands an approved withdrawal to the chain adapter. */
  dispatching_at: number | null;
  /** The client's id for the request (idempotency), unique per account; null when it sent none. */
  client_withdrawal_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface Database {
  tokens: TokensTable;
  withdrawal_settings: WithdrawalSettingsTable;
  withdrawal_addresses: WithdrawalAddressesTable;
  withdrawals: WithdrawalsTable;
}
