import type { AccountHistoryTable, FillsTable, OrdersTable } from '../../store/schema.js';
import { readMinor } from '../money.js';
import type { SelfTradePrevention } from '../matching/types.js';
import type { Actor, FillRecord, OrderRecord } from './types.js';

/** Row ↔ record conversions for orders and fills (money columns are decimal strings). */
export function orderFromRow(r: OrdersTable): OrderRecord {
  return {
    id: r.id,
    accountId: r.account_id,
    market: r.market,
    side: r.side,
    type: r.type,
    timeInForce: r.time_in_force,
    selfTradePrevention: r.stp as SelfTradePrevention,
    price: r.price === null ? null : readMinor(r.price),
    quantity: readMinor(r.quantity),
    filled: readMinor(r.filled),
    remaining: readMinor(r.remaining),
    notional: readMinor(r.notional),
    fees: readMinor(r.fees),
    status: r.status,
    reason: r.reason,
    clientOrderId: r.client_order_id,
    seq: Number(r.seq),
    actor: { kind: r.actor_kind as Actor['kind'], id: r.actor_id, accountId: r.account_id },
    cancelActor: r.cancel_actor_kind === null ? null : { kind: r.cancel_actor_kind as Actor['kind'], id: r.cancel_actor_id ?? '', accountId: null },
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

export function orderToRow(o: OrderRecord): OrdersTable {
  return {
    id: o.id,
    account_id: o.accountId,
    market: o.market,
    side: o.side,
    type: o.type,
    time_in_force: o.timeInForce,
    stp: o.selfTradePrevention,
    price: o.price === null ? null : o.price.toString(),
    quantity: o.quantity.toString(),
    filled: o.filled.toString(),
    remaining: o.remaining.toString(),
    notional: o.notional.toString(),
    fees: o.fees.toString(),
    status: o.status,
    reason: o.reason,
    client_order_id: o.clientOrderId,
    seq: o.seq,
    actor_kind: o.actor.kind,
    actor_id: o.actor.id,
    cancel_actor_kind: o.cancelActor?.kind ?? null,
    cancel_actor_id: o.cancelActor?.id ?? null,
    created_at: o.createdAt,
    updated_at: o.updatedAt,
  };
}

export function fillFromRow(r: FillsTable): FillRecord {
  return {
    id: r.id,
    market: r.market,
    tradeSeq: Number(r.trade_seq),
    price: readMinor(r.price),
    quantity: readMinor(r.quantity),
    notional: readMinor(r.notional),
    takerSide: r.taker_side,
    takerOrderId: r.taker_order_id,
    makerOrderId: r.maker_order_id,
    takerAccountId: r.taker_account_id,
    makerAccountId: r.maker_account_id,
    takerFee: readMinor(r.taker_fee),
    makerFee: readMinor(r.maker_fee),
    takerActor: { kind: r.taker_actor_kind as Actor['kind'], id: r.taker_actor_id, accountId: r.taker_account_id },
    createdAt: Number(r.created_at),
  };
}

export function fillToRow(f: FillRecord): FillsTable {
  return {
    id: f.id,
    market: f.market,
    trade_seq: f.tradeSeq,
    price: f.price.toString(),
    quantity: f.quantity.toString(),
    notional: f.notional.toString(),
    taker_side: f.takerSide,
    taker_order_id: f.takerOrderId,
    maker_order_id: f.makerOrderId,
    taker_account_id: f.takerAccountId,
    maker_account_id: f.makerAccountId,
    taker_fee: f.takerFee.toString(),
    maker_fee: f.makerFee.toString(),
    taker_actor_kind: f.takerActor.kind,
    taker_actor_id: f.takerActor.id,
    created_at: f.createdAt,
  };
}

/** Fill ids are this prefix and their history key (the taker order's key and the fill's number). */
export const FILL_ID_PREFIX = 'fil_';

/** An id without its prefix: creation time, then randomness (the sort key of account history). */
export function historyKey(id: string): string {
  return id.slice(id.indexOf('_') + 1);
}

/**
 * The account-history rows of new orders and fills, in key order: one per order, and one per
 * side of a fill (a self-trade fill once, as taker, as the fill query reports it).
 */
export function historyRows(orders: readonly OrderRecord[], fills: readonly FillRecord[]): AccountHistoryTable[] {
  const rows: AccountHistoryTable[] = orders.map((o) => ({ account_id: o.accountId, sort_key: historyKey(o.id), kind: 'order', id: o.id }));
  for (const f of fills) {
    const sortKey = historyKey(f.id);
    rows.push({ account_id: f.takerAccountId, sort_key: sortKey, kind: 'taker', id: f.id });
    if (f.makerAccountId !== f.takerAccountId) rows.push({ account_id: f.makerAccountId, sort_key: sortKey, kind: 'maker', id: f.id });
  }
  const keyed = rows.map((r) => ({ k: `${r.account_id}\u0001${r.sort_key}\u0001${r.kind}`, r }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  return keyed.map((x) => x.r);
}
