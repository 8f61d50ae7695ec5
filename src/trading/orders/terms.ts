import type { Transaction } from 'kysely';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Database } from '../../store/schema.js';
import { notionalOf, type Market } from '../assets/index.js';
import type { HaltStatus } from '../halt.js';
import type { BookTerms, DepthLevel, IncomingOrder, MatchResult, TimeInForce } from '../matching/types.js';
import { formatAmount, parseAmount, pow10 } from '../money.js';
import { CLIENT_ORDER_ID, type PlaceOrderInput, type TradingEvent } from './types.js';

/** An order after parsing: the book's terms of an incoming order (exact amounts, defaults applied), its market and client id. */
export interface ParsedOrder extends Pick<IncomingOrder, 'side' | 'type' | 'price' | 'quantity' | 'timeInForce' | 'selfTradePrevention'> {
  market: string;
  clientOrderId: string | null;
}

/** Runs inside the order transaction, after all rows are written and before commit. */
export type CommitHook = (trx: Transaction<Database>, events: readonly TradingEvent[]) => Promise<void>;

export interface BookSnapshot {
  market: string;
  seq: number;
  bids: DepthLevel[];
  asks: DepthLevel[];
  at: number;
}

export function termsOf(market: Market): BookTerms {
  return { baseScale: pow10(market.baseDecimals), makerFeeBps: BigInt(market.makerFeeBps), takerFeeBps: BigInt(market.takerFeeBps) };
}

/** Tick, lot and minimum-notional checks of a parsed order against a market's terms. */
export function checkTerms(market: Market, o: ParsedOrder): Result<void, 'validation_failed'> {
  if (o.quantity % market.lotSize !== 0n) return fail('validation_failed', `quantity must be a multiple of the lot size ${formatAmount(market.lotSize, market.baseDecimals)}`);
  if (o.type === 'limit') {
    const price = o.price!;
    if (price % market.tickSize !== 0n) return fail('validation_failed', `price must be a multiple of the tick size ${formatAmount(market.tickSize, market.quoteDecimals)}`);
    if (notionalOf(market, price, o.quantity) < market.minNotional) {
      return fail('validation_failed', `price × quantity is below the minimum order of ${formatAmount(market.minNotional, market.quoteDecimals)} ${market.quote}`);
    }
  }
  return ok(undefined);
}

/**
 * The minimum notional of a market order, which has no price to check before matching: the
 * notional its plan would trade. Below the market's minimum (but above nothing: an order that would
 * trade nothing moves no money), `validation_failed`. Limit orders are checked by `checkTerms`.
 */
export function minimumNotionalRefusal(market: Market, plan: MatchResult): Result<never, 'validation_failed'> | undefined {
  if (plan.order.type !== 'market' || plan.fills.length === 0 || plan.notional >= market.minNotional) return undefined;
  return fail(
    'validation_failed',
    `This market order would trade ${formatAmount(plan.notional, market.quoteDecimals)} ${market.quote}, below the minimum order of ${formatAmount(market.minNotional, market.quoteDecimals)} ${market.quote}`,
  );
}

/** Parses and checks an order's fields against its market (exact amounts; no rounding, ever). */
export function parseOrder(market: Market, input: PlaceOrderInput): Result<ParsedOrder, 'validation_failed'> {
  if (input.side !== 'buy' && input.side !== 'sell') return fail('validation_failed', 'side must be buy or sell');
  if (input.type !== 'limit' && input.type !== 'market') return fail('validation_failed', 'type must be limit or market');
  const quantity = parseAmount(input.quantity, market.baseDecimals, 'quantity');
  if (!quantity.ok) return quantity;
  let price: bigint | null = null;
  let timeInForce: TimeInForce;
  if (input.type === 'limit') {
    if (input.price === undefined) return fail('validation_failed', 'a limit order needs a price');
    const p = parseAmount(input.price, market.quoteDecimals, 'price');
    if (!p.ok) return p;
    price = p.value;
    timeInForce = input.timeInForce ?? 'GTC';
  } else {
    if (input.price !== undefined) return fail('validation_failed', 'a market order takes no price');
    timeInForce = input.timeInForce ?? 'IOC';
    if (timeInForce === 'GTC') return fail('validation_failed', 'a market order cannot rest: use IOC or FOK');
  }
  if (!['GTC', 'IOC', 'FOK'].includes(timeInForce)) return fail('validation_failed', 'timeInForce must be GTC, IOC or FOK');
  const stp = input.selfTradePrevention ?? 'cancel_maker';
  if (!['cancel_maker', 'cancel_taker', 'cancel_both'].includes(stp)) return fail('validation_failed', 'selfTradePrevention must be cancel_maker, cancel_taker or cancel_both');
  if (input.clientOrderId !== undefined && !CLIENT_ORDER_ID.test(input.clientOrderId)) return fail('validation_failed', 'clientOrderId must be 1–64 letters, digits or _ . : -');
  const order: ParsedOrder = {
    market: market.symbol,
    side: input.side,
    type: input.type,
    price,
    quantity: quantity.value,
    timeInForce,
    selfTradePrevention: stp,
    clientOrderId: input.clientOrderId ?? null,
  };
  const terms = checkTerms(market, order);
  return terms.ok ? ok(order) : terms;
}


/** 503 `trading_halted` for `market`, naming the halt's scope and reason. */
export function haltRefusal(market: string, h: HaltStatus): Result<never, 'trading_halted'> {
  const why = h.record?.reason ? `: ${h.record.reason}` : '';
  return fail('trading_halted', h.scope === 'global' ? `Trading is halted${why}` : `Trading in ${market} is halted${why}`, { scope: h.scope });
}
