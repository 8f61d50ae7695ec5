import type { AuditLog } from '../audit/audit-log.js';
import type { AuditEvent } from '../audit/events.js';
import type { Trading } from './index.js';
import { formatAmount } from './money.js';
import type { Actor, TradingEvent } from './orders/types.js';
import type { Assets, Market } from './assets/index.js';
import type { CommitHook } from './orders/terms.js';

/** Who acted, as the audit trail names it: the account, and the session or API key it used. */
function actorFields(actor: Actor) {
  return {
    actorId: actor.accountId ?? `system:${actor.id}`,
    // An admin acts through a signed-in session (routes refuse keys): named as sessionId, as in
    // every other admin record, so an auditor tracing one session finds its delistings too.
    via: { via: actor.kind, ...(actor.kind === 'apiKey' ? { keyId: actor.id } : actor.kind === 'session' || actor.kind === 'admin' ? { sessionId: actor.id } : { actor: actor.id }) },
  };
}

/**
 * The audit events of one trading event. A fill gives two, one per account that traded, so that an
 * auditor's account filter (clear columns only: the counterparty is inside the encrypted details)
 * finds the trade from either side: the taker's, done by the taker's actor, and the maker's, done
 * by no actor of the maker's (its resting order was taken).
 */
function toAuditEvents(e: TradingEvent, m: Market): AuditEvent[] {
  if (e.type !== 'fill') return [toAuditEvent(e, m)];
  const f = e.fill;
  const price = (v: bigint) => formatAmount(v, m.quoteDecimals);
  return [
    toAuditEvent(e, m),
    {
      type: 'trading.fill',
      accountId: f.makerAccountId,
      actorId: null,
      details: {
        fillId: f.id,
        orderId: f.makerOrderId,
        market: f.market,
        side: f.takerSide === 'buy' ? 'sell' : 'buy',
        liquidity: 'maker',
        price: price(f.price),
        quantity: formatAmount(f.quantity, m.baseDecimals),
        takerOrderId: f.takerOrderId,
        takerAccountId: f.takerAccountId,
        makerFee: price(f.makerFee),
      },
    },
  ];
}

function toAuditEvent(e: TradingEvent, m: Market): AuditEvent {
  const qty = (v: bigint) => formatAmount(v, m.baseDecimals);
  const price = (v: bigint) => formatAmount(v, m.quoteDecimals);
  switch (e.type) {
    case 'order.placed': {
      const { actorId, via } = actorFields(e.actor);
      const o = e.order;
      return {
        type: 'trading.order.placed',
        accountId: o.accountId,
        actorId,
        details: {
          orderId: o.id,
          market: o.market,
          side: o.side,
          orderType: o.type,
          quantity: qty(o.quantity),
          price: o.price === null ? undefined : price(o.price),
          clientOrderId: o.clientOrderId ?? undefined,
          timeInForce: o.timeInForce,
          status: o.status,
          filled: qty(o.filled),
          ...via,
        },
      };
    }
    case 'market.delisted': {
      const { actorId, via } = actorFields(e.actor);
      return { type: 'admin.market.delisted', actorId, details: { market: e.market, cancelled: e.cancelled, ...via } };
    }
    case 'order.cancelled': {
      const { actorId, via } = actorFields(e.actor);
      return {
        type: 'trading.order.cancelled',
        accountId: e.order.accountId,
        actorId,
        details: { orderId: e.order.id, market: e.order.market, reason: e.reason, cancelledQuantity: qty(e.order.quantity - e.order.filled), ...via },
      };
    }
    case 'fill': {
      const f = e.fill;
      const { actorId, via } = actorFields(f.takerActor);
      return {
        type: 'trading.fill',
        accountId: f.takerAccountId,
        actorId,
        details: {
          fillId: f.id,
          orderId: f.takerOrderId,
          market: f.market,
          side: f.takerSide,
          liquidity: 'taker',
          price: price(f.price),
          quantity: qty(f.quantity),
          makerOrderId: f.makerOrderId,
          makerAccountId: f.makerAccountId,
          takerFee: price(f.takerFee),
          makerFee: price(f.makerFee),
          ...via,
        },
      };
    }
  }
}

function marketOf(e: TradingEvent): string {
  return e.type === 'fill' ? e.fill.market : e.type === 'market.delisted' ? e.market : e.order.market;
}

/**
 * Every order, cancel and fill (a record for each side), and an admin's delisting, goes to the
 * audit trail inside the order transaction that makes it (the trading core's commit hook): the trade and its records commit or
 * roll back together.
 */
export function auditTrading(trading: Trading, audit: AuditLog): void {
  auditOrderCommits(trading.orders, trading.assets, audit);
}

/**
 * The commit hook itself, on whichever sequencer runs the order transactions: the server's own
 * (auditTrading), or the order thread's (orders/thread-worker.ts), which appends through its own
 * store connection into the same chain (the head row is locked inside the transaction).
 */
export function auditOrderCommits(orders: { onCommitting(hook: CommitHook): void }, assets: Assets, audit: Pick<AuditLog, 'recordManyIn'>): void {
  orders.onCommitting(async (trx, events) => {
    if (events.length === 0) return;
    const markets = new Map<string, Market>();
    for (const e of events) {
      const symbol = marketOf(e);
      if (markets.has(symbol)) continue;
      // Read through the transaction: on SQLite a read outside it would wait for it forever.
      const row = await trx.selectFrom('markets').selectAll().where('symbol', '=', symbol).executeTakeFirstOrThrow();
      markets.set(symbol, await assets.fromRow(row, trx));
    }
    const mapped = events.flatMap((e) => toAuditEvents(e, markets.get(marketOf(e))!));
    await audit.recordManyIn(trx, mapped);
  });
}
