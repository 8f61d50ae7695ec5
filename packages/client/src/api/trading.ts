import { randomBytes } from 'node:crypto';
import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import { assertDecimal, type Decimal, type EpochMs } from './common.js';

export type Side = 'buy' | 'sell';
export type OrderType = 'limit' | 'market';
export type TimeInForce = 'GTC' | 'IOC' | 'FOK';
export type OrderStatus = 'open' | 'partially_filled' | 'filled' | 'cancelled' | 'rejected' | 'expired' | (string & {});

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
}

export interface Order {
  id: string;
  clientOrderId: string;
  market: string;
  side: Side;
  type: OrderType;
  price: Decimal | null;
  quantity: Decimal;
  filledQuantity: Decimal;
  averagePrice?: Decimal | null;
  timeInForce: TimeInForce;
  status: OrderStatus;
  createdAt: EpochMs;
  updatedAt?: EpochMs;
}

export interface OrdersQuery {
  market?: string;
  status?: OrderStatus;
  limit?: number;
  /** Orders created before this time (paging backwards). */
  before?: EpochMs;
}

export interface Fill {
  id: string;
  orderId: string;
  market: string;
  side: Side;
  price: Decimal;
  quantity: Decimal;
  fee: Decimal;
  feeAsset: string;
  liquidity: 'maker' | 'taker';
  at: EpochMs;
}

export interface FillsQuery {
  market?: string;
  orderId?: string;
  limit?: number;
  before?: EpochMs;
}

export interface Position {
  asset: string;
  quantity: Decimal;
  averageCost: Decimal | null;
  realizedPnl: Decimal;
  unrealizedPnl: Decimal | null;
}

export interface CancelAllResult {
  /** How many orders were cancelled. */
  cancelled: number;
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
   * generated here), and the server answers a repeated one with the original order.
   *
   * @example
   * const order = await client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'limit', price: '0.0125', quantity: '1000' });
   */
  placeOrder(order: PlaceOrderRequest, options?: CallOptions): Promise<Order> {
    assertDecimal('quantity', order.quantity);
    assertDecimal('price', order.price, true);
    const body: PlaceOrderRequest = { ...order, clientOrderId: order.clientOrderId ?? newClientOrderId() };
    return this.#requester.call({ method: 'POST', path: '/api/v1/trading/orders', body, auth: 'any', idempotent: true, options });
  }

  /** `GET /api/v1/trading/orders` */
  orders(query: OrdersQuery = {}, options?: CallOptions): Promise<Order[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/trading/orders', query, auth: 'any', options });
  }

  /** `GET /api/v1/trading/orders/:id` */
  order(id: string, options?: CallOptions): Promise<Order> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/trading/orders/${pathParam(id)}`, auth: 'any', options });
  }

  /** `DELETE /api/v1/trading/orders/:id` (a retry after a lost answer may report `not_found`/`conflict` for an order already cancelled). */
  cancelOrder(id: string, options?: CallOptions): Promise<Order> {
    return this.#requester.call({ method: 'DELETE', path: `/api/v1/trading/orders/${pathParam(id)}`, auth: 'any', options });
  }

  /** `DELETE /api/v1/trading/orders?market=` */
  cancelAllOrders(market: string, options?: CallOptions): Promise<CancelAllResult> {
    if (typeof market !== 'string' || market === '') throw new TypeError('market is required');
    return this.#requester.call({ method: 'DELETE', path: '/api/v1/trading/orders', query: { market }, auth: 'any', options });
  }

  /** `GET /api/v1/trading/fills` */
  fills(query: FillsQuery = {}, options?: CallOptions): Promise<Fill[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/trading/fills', query, auth: 'any', options });
  }

  /** `GET /api/v1/trading/positions` */
  positions(options?: CallOptions): Promise<Position[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/trading/positions', auth: 'any', options });
  }

  /** `POST /api/v1/trading/positions/:asset/close`: sells the asset's available balance at market. Not retried. */
  closePosition(asset: string, options?: CallOptions): Promise<Order> {
    return this.#requester.call({ method: 'POST', path: `/api/v1/trading/positions/${pathParam(asset)}/close`, auth: 'any', options });
  }
}
