import { randomBytes } from 'node:crypto';
import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import { assertDecimal, type Decimal, type EpochMs } from './common.js';

export type Side = 'buy' | 'sell';
export type OrderType = 'limit' | 'market';
export type TimeInForce = 'GTC' | 'IOC' | 'FOK';
/** What happens when an order would trade with your own resting order (server default `cancel_maker`). */
export type SelfTradePrevention = 'cancel_maker' | 'cancel_taker' | 'cancel_both';
export type OrderStatus = 'open' | 'partially_filled' | 'filled' | 'cancelled' | 'expired' | (string & {});
/** The `status` filter of `orders()`: `closed` is every order no longer open. */
export type OrderStatusFilter = 'open' | 'closed' | 'all';

export interface PlaceOrderRequest {
  market: string;
  side: Side;
  type: OrderType;
  /** Required for limit orders. */
  price?: Decimal;
  quantity: Decimal;
  timeInForce?: TimeInForce;
  /**
   * Your id for the order, unique per account. The client generates one when you leave it out, so that a
   * placement retried after a lost answer returns the original order instead of placing a second one.
   */
  clientOrderId?: string;
  selfTradePrevention?: SelfTradePrevention;
}

export interface Order {
  id: string;
  /** Null for orders placed without one (e.g. by an admin). */
  clientOrderId: string | null;
  market: string;
  side: Side;
  type: OrderType;
  timeInForce: TimeInForce;
  selfTradePrevention: SelfTradePrevention;
  /** Null for market orders. */
  price: Decimal | null;
  quantity: Decimal;
  filledQuantity: Decimal;
  remainingQuantity: Decimal;
  /** Null until something is filled. */
  averagePrice: Decimal | null;
  /** The quote amount filled so far. */
  notional: Decimal;
  fees: Decimal;
  feeAsset: string;
  status: OrderStatus;
  /** Why the order ended early, e.g. `ioc_remainder`, `fok_unfillable`, `no_liquidity`, `self_trade`, `user`. */
  reason: string | null;
  createdAt: EpochMs;
  updatedAt: EpochMs;
}

/** An order with its fills: what placing, fetching one and closing a position answer. */
export interface OrderWithFills extends Order {
  fills: Fill[];
}

export interface OrdersQuery {
  market?: string;
  /** Default `all`. */
  status?: OrderStatusFilter;
  /** 1–500 (default 100). */
  limit?: number;
  /** An order id: orders older than it (pass the previous page's `next`). */
  before?: string;
}

/** A page of `GET /api/v1/trading/orders`, newest first. */
export interface OrdersPage {
  orders: Order[];
  /** The id to pass as `before` for the next page; null on the last page. */
  next: string | null;
}

export interface Fill {
  id: string;
  orderId: string;
  market: string;
  side: Side;
  liquidity: 'maker' | 'taker';
  price: Decimal;
  quantity: Decimal;
  /** The quote amount. */
  notional: Decimal;
  fee: Decimal;
  feeAsset: string;
  createdAt: EpochMs;
}

export interface FillsQuery {
  market?: string;
  orderId?: string;
  /** 1–500 (default 100). */
  limit?: number;
  /** A fill id: fills older than it (pass the previous page's `next`). */
  before?: string;
}

/** A page of `GET /api/v1/trading/fills`, newest first. */
export interface FillsPage {
  fills: Fill[];
  /** The id to pass as `before` for the next page; null on the last page. */
  next: string | null;
}

/** A holding valued in USDC (`valuationAsset`) at last prices. */
export interface Position {
  asset: string;
  /** `available + held`. */
  quantity: Decimal;
  available: Decimal;
  /** Held for open orders and pending withdrawals. */
  held: Decimal;
  costBasis: Decimal;
  averageCost: Decimal | null;
  lastPrice: Decimal | null;
  value: Decimal | null;
  /** Signed; null when the asset has no price. */
  unrealizedPnl: Decimal | null;
  /** Signed. */
  realizedPnl: Decimal;
  /** The asset values are in: `USDC`. */
  valuationAsset: string;
}

export interface ClosePositionRequest {
  clientOrderId?: string;
  selfTradePrevention?: SelfTradePrevention;
}

/** `DELETE /api/v1/trading/orders`: the orders that were cancelled. */
export interface CancelAllResult {
  cancelled: Order[];
  count: number;
}

const RANDOM_74 = 2n ** 74n;
/** The millisecond and the 74 random bits of the last id made. */
let last: { ms: number; bits: bigint } | undefined;

/**
 * A fresh client order id: a UUIDv7 (RFC 9562), 48 bits of Unix milliseconds then 74 random bits.
 * Ids sort by creation time, and within one millisecond by the order they were made: the first id
 * of a millisecond is random, each next one the last plus a random step of 1 to 2^32 (RFC 9562,
 * monotonic random), so the next id cannot be guessed from the last. The server's idempotency
 * index, keyed by the id first, takes new ones at its end instead of all over it.
 */
export function newClientOrderId(now: number = Date.now()): string {
  let bits: bigint;
  if (last && last.ms === now && last.bits < RANDOM_74 - 2n ** 32n - 1n) {
    bits = last.bits + BigInt(randomBytes(4).readUInt32BE(0)) + 1n;
  } else {
    bits = BigInt(`0x${randomBytes(10).toString('hex')}`) % RANDOM_74;
  }
  last = { ms: now, bits };
  const b = Buffer.alloc(16);
  b.writeUIntBE(now, 0, 6);
  // rand_a: the top 12 of the 74 bits, after the version; rand_b: the other 62, after the variant.
  b.writeUInt16BE(0x7000 | Number(bits >> 62n), 6);
  const low = bits & ((1n << 62n) - 1n);
  b.writeUInt32BE(0x80000000 + Number(low >> 32n), 8);
  b.writeUInt32BE(Number(low & 0xffffffffn), 12);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Orders, fills and positions (`orders:*`, `positions:write`; 50 requests/s). */
export class TradingApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /**
   * `POST /api/v1/trading/orders`. Safe to retry: the order carries a `clientOrderId` (yours, or one
   * generated here), and the server answers a repeated one with the original order. When the call
   * fails with its outcome unknown (a 500, a timeout, a lost connection), its error names the id
   * (`error.clientOrderId`): place the order again with it to get the original, never a second.
   *
   * @example
   * const order = await client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'limit', price: '0.0125', quantity: '1000' });
   */
  placeOrder(order: PlaceOrderRequest, options?: CallOptions): Promise<OrderWithFills> {
    assertDecimal('quantity', order.quantity);
    assertDecimal('price', order.price, true);
    const body: PlaceOrderRequest = { ...order, clientOrderId: order.clientOrderId ?? newClientOrderId() };
    return this.#requester.call({ method: 'POST', path: '/api/v1/trading/orders', body, auth: 'any', idempotent: true, clientIds: { clientOrderId: body.clientOrderId! }, options });
  }

  /** `GET /api/v1/trading/orders`: one page, newest first; pass `next` as `before` for the next one. */
  orders(query: OrdersQuery = {}, options?: CallOptions): Promise<OrdersPage> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/trading/orders', query, auth: 'any', options });
  }

  /** `GET /api/v1/trading/orders/:id`: the order with its fills. */
  order(id: string, options?: CallOptions): Promise<OrderWithFills> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/trading/orders/${pathParam(id)}`, auth: 'any', options });
  }

  /** `DELETE /api/v1/trading/orders/:id` (a retry after a lost answer may report `not_found`/`conflict` for an order already cancelled). */
  cancelOrder(id: string, options?: CallOptions): Promise<Order> {
    return this.#requester.call({ method: 'DELETE', path: `/api/v1/trading/orders/${pathParam(id)}`, auth: 'any', options });
  }

  /**
   * `DELETE /api/v1/trading/orders[?market=]`: cancels every open order of `market`, or of every market
   * when it is left out, and answers them.
   */
  cancelAllOrders(market?: string, options?: CallOptions): Promise<CancelAllResult> {
    // An empty string would be sent as `?market=` and refused: leaving a market out is `undefined`.
    if (market !== undefined && (typeof market !== 'string' || market === '')) throw new TypeError('market must be a market symbol, or left out to cancel in every market');
    return this.#requester.call({ method: 'DELETE', path: '/api/v1/trading/orders', query: { market }, auth: 'any', options });
  }

  /** `GET /api/v1/trading/fills`: one page, newest first; pass `next` as `before` for the next one. */
  fills(query: FillsQuery = {}, options?: CallOptions): Promise<FillsPage> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/trading/fills', query, auth: 'any', options });
  }

  /** `GET /api/v1/trading/positions` (the server answers `{ positions }`; this returns the list). */
  async positions(options?: CallOptions): Promise<Position[]> {
    const { positions } = await this.#requester.call<{ positions: Position[] }>({ method: 'GET', path: '/api/v1/trading/positions', list: 'positions', auth: 'any', options });
    return positions;
  }

  /** `POST /api/v1/trading/positions/:asset/close`: sells the asset's available balance at market. Safe to retry, as `placeOrder`. */
  closePosition(asset: string, request: ClosePositionRequest = {}, options?: CallOptions): Promise<OrderWithFills> {
    // An order too: it carries a clientOrderId (yours, or one generated here), so a retry after a
    // 5xx or a lost answer returns the first close instead of selling again.
    const body: ClosePositionRequest = { ...request, clientOrderId: request.clientOrderId ?? newClientOrderId() };
    return this.#requester.call({ method: 'POST', path: `/api/v1/trading/positions/${pathParam(asset)}/close`, body, auth: 'any', idempotent: true, clientIds: { clientOrderId: body.clientOrderId! }, options });
  }
}
