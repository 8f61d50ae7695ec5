import type { Principal } from '../../security/principal.js';
import type { Role } from '../../security/rbac/roles.js';
import type { OrderOutcome, OrderType, SelfTradePrevention, Side, TimeInForce } from '../matching/types.js';

/**
 * Who did something, as recorded on orders, cancels and fills (the audit trail reads these):
 * a session (id = session id), an API key (id = key id), an admin acting on the system, or the
 * system itself (self-trade prevention, delisting).
 */
export interface Actor {
  kind: 'session' | 'apiKey' | 'admin' | 'system';
  id: string;
  accountId: string | null;
}

export function actorOf(principal: Exclude<Principal, { kind: 'anonymous' }>): Actor {
  return principal.kind === 'session'
    ? { kind: 'session', id: principal.sessionId, accountId: principal.accountId }
    : { kind: 'apiKey', id: principal.keyId, accountId: principal.accountId };
}

export const SYSTEM_STP: Actor = { kind: 'system', id: 'self_trade_prevention', accountId: null };

export type OrderStatus = OrderOutcome;
export const OPEN_STATUSES: readonly OrderStatus[] = ['open', 'partially_filled'];

export interface OrderRecord {
  id: string;
  accountId: string;
  market: string;
  side: Side;
  type: OrderType;
  timeInForce: TimeInForce;
  selfTradePrevention: SelfTradePrevention;
  price: bigint | null;
  quantity: bigint;
  filled: bigint;
  /** Still resting on the book (0 once the order is closed). */
  remaining: bigint;
  /** Σ fill notional, quote minor units. */
  notional: bigint;
  /** Fees paid, quote minor units. */
  fees: bigint;
  status: OrderStatus;
  reason: string | null;
  clientOrderId: string | null;
  seq: number;
  actor: Actor;
  cancelActor: Actor | null;
  createdAt: number;
  updatedAt: number;
}

export interface FillRecord {
  id: string;
  market: string;
  tradeSeq: number;
  price: bigint;
  quantity: bigint;
  notional: bigint;
  takerSide: Side;
  takerOrderId: string;
  makerOrderId: string;
  takerAccountId: string;
  makerAccountId: string;
  takerFee: bigint;
  makerFee: bigint;
  takerActor: Actor;
  createdAt: number;
}

/** What the audit trail needs, handed to commit hooks inside the order transaction. */
export type TradingEvent =
  | { type: 'order.placed'; at: number; order: OrderRecord; actor: Actor }
  | { type: 'order.cancelled'; at: number; order: OrderRecord; actor: Actor; reason: 'user' | 'self_trade' | 'delisted' }
  | { type: 'fill'; at: number; fill: FillRecord }
  | { type: 'market.delisted'; at: number; market: string; actor: Actor; cancelled: number };

/** An order as the client sent it, amounts still decimal strings. */
export interface PlaceOrderInput {
  market: string;
  side: Side;
  type: OrderType;
  price?: string | undefined;
  quantity: string;
  timeInForce?: TimeInForce | undefined;
  clientOrderId?: string | undefined;
  selfTradePrevention?: SelfTradePrevention | undefined;
}

/** The caller of an order operation: the account, the role in force, and who acted. */
export interface Caller {
  accountId: string;
  role: Role;
  actor: Actor;
}

export interface PlaceOutcome {
  order: OrderRecord;
  fills: FillRecord[];
  /** True when `clientOrderId` matched an earlier order, which is returned unchanged. */
  replayed: boolean;
}

export const CLIENT_ORDER_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
