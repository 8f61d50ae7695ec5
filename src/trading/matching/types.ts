/** Vocabulary of the matching engine. Amounts are bigint minor units; nothing here does I/O. */

export type Side = 'buy' | 'sell';
export type OrderType = 'limit' | 'market';
/** GTC rests what it cannot fill; IOC fills what it can and expires the rest; FOK fills all or nothing. */
export type TimeInForce = 'GTC' | 'IOC' | 'FOK';
/**
 * What happens when an incoming order would trade with a resting order of the same account:
 * `cancel_maker` cancels the resting order and keeps matching; `cancel_taker` stops the incoming
 * order there (its remainder is cancelled); `cancel_both` does both.
 */
export type SelfTradePrevention = 'cancel_maker' | 'cancel_taker' | 'cancel_both';

export const SIDES: readonly Side[] = ['buy', 'sell'];
export const TIME_IN_FORCE: readonly TimeInForce[] = ['GTC', 'IOC', 'FOK'];
export const STP_MODES: readonly SelfTradePrevention[] = ['cancel_maker', 'cancel_taker', 'cancel_both'];

/** Per-market constants the engine needs. */
export interface BookTerms {
  /**
   * 10^baseDecimals. Prices are quote minor units per whole base unit and quantities base minor
   * units, so a trade's notional in quote minor units is price × quantity / baseScale; the market's
   * tick × lot rule (see assets/markets.ts) makes that division exact.
   */
  baseScale: bigint;
  makerFeeBps: bigint;
  takerFeeBps: bigint;
}

/** An order resting on the book. `remaining` shrinks as it fills. */
export interface RestingOrder {
  readonly id: string;
  readonly accountId: string;
  readonly side: Side;
  readonly price: bigint;
  remaining: bigint;
  /** Time priority: lower was first. */
  readonly seq: number;
}

export interface IncomingOrder {
  id: string;
  accountId: string;
  side: Side;
  type: OrderType;
  /** Limit price; ignored for market orders. */
  price: bigint | null;
  quantity: bigint;
  timeInForce: TimeInForce;
  selfTradePrevention: SelfTradePrevention;
  seq: number;
}

export interface Fill {
  makerOrderId: string;
  makerAccountId: string;
  takerOrderId: string;
  takerAccountId: string;
  takerSide: Side;
  /** The maker's price. */
  price: bigint;
  quantity: bigint;
  /** price × quantity / baseScale, in quote minor units. */
  notional: bigint;
  makerFee: bigint;
  takerFee: bigint;
  /** The maker's remaining quantity after this fill (0: it left the book). */
  makerRemaining: bigint;
}

/**
 * Final state of the incoming order after matching: `open` / `partially_filled` rest on the book;
 * `expired` is an IOC, FOK or market remainder nobody took; `cancelled` was stopped by self-trade
 * prevention.
 */
export type OrderOutcome = 'filled' | 'open' | 'partially_filled' | 'expired' | 'cancelled';

export type OutcomeReason = 'fok_unfillable' | 'ioc_remainder' | 'no_liquidity' | 'self_trade' | null;

/** What matching an order would do (`plan`) and, once applied, did. */
export interface MatchResult {
  order: IncomingOrder;
  fills: Fill[];
  /** The account's own resting orders removed by self-trade prevention (remaining as they were). */
  selfTradeCancels: { id: string; accountId: string; side: Side; price: bigint; remaining: bigint }[];
  filled: bigint;
  /** Quantity not filled (resting when `rests`, otherwise expired or cancelled). */
  remaining: bigint;
  /** Σ fill notional, quote minor units. */
  notional: bigint;
  takerFees: bigint;
  rests: boolean;
  status: OrderOutcome;
  reason: OutcomeReason;
}

export interface DepthLevel {
  price: bigint;
  quantity: bigint;
  orders: number;
}
