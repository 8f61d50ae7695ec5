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

export interface Database {
  assets: AssetsTable;
  markets: MarketsTable;
  ledger_entries: LedgerEntriesTable;
  ledger_postings: LedgerPostingsTable;
  balances: BalancesTable;
  holds: HoldsTable;
  orders: OrdersTable;
  fills: FillsTable;
  positions: PositionsTable;
  trading_usage: TradingUsageTable;
  trading_exposure: TradingExposureTable;
  trading_limits: TradingLimitsTable;
  candles: CandlesTable;
  faucet_grants: FaucetGrantsTable;
}
