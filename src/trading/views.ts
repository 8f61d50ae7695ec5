import type { Asset, Market } from './assets/index.js';
import type { LimitStatus } from './limits.js';
import type { Candle } from './marketdata/candles.js';
import type { Ticker } from './marketdata/index.js';
import { formatAmount, pow10 } from './money.js';
import type { AccountFill } from './orders/queries.js';
import type { BookSnapshot } from './orders/service.js';
import type { FillRecord, OrderRecord } from './orders/types.js';
import type { Portfolio, Position } from './portfolio/index.js';

/**
 * The JSON shapes of the trading API: every amount a decimal string at its asset's precision,
 * every time epoch ms. Kept apart from the routes so the shapes are one thing to read.
 */
type Decimals = Pick<Market, 'baseDecimals' | 'quoteDecimals' | 'quote' | 'base'>;

const price = (m: Decimals, v: bigint) => formatAmount(v, m.quoteDecimals);
const qty = (m: Decimals, v: bigint) => formatAmount(v, m.baseDecimals);
const maybe = (v: bigint | null, f: (v: bigint) => string) => (v === null ? null : f(v));

export function assetView(a: Asset) {
  return { symbol: a.symbol, name: a.name, decimals: a.decimals, faucet: a.faucet, createdAt: a.createdAt };
}

export function marketView(m: Market) {
  return {
    symbol: m.symbol,
    base: m.base,
    quote: m.quote,
    baseDecimals: m.baseDecimals,
    quoteDecimals: m.quoteDecimals,
    tickSize: price(m, m.tickSize),
    lotSize: qty(m, m.lotSize),
    minNotional: price(m, m.minNotional),
    makerFeeBps: m.makerFeeBps,
    takerFeeBps: m.takerFeeBps,
    status: m.status,
    lastPrice: maybe(m.lastPrice, (v) => price(m, v)),
  };
}

export function orderView(m: Decimals, o: OrderRecord) {
  return {
    id: o.id,
    clientOrderId: o.clientOrderId,
    market: o.market,
    side: o.side,
    type: o.type,
    timeInForce: o.timeInForce,
    selfTradePrevention: o.selfTradePrevention,
    price: maybe(o.price, (v) => price(m, v)),
    quantity: qty(m, o.quantity),
    filledQuantity: qty(m, o.filled),
    remainingQuantity: qty(m, o.remaining),
    averagePrice: o.filled > 0n ? price(m, (o.notional * pow10(m.baseDecimals)) / o.filled) : null,
    notional: price(m, o.notional),
    fees: price(m, o.fees),
    feeAsset: m.quote,
    status: o.status,
    reason: o.reason,
    createdAt: o.createdAt,
    updatedAt: o.updatedAt,
  };
}

/** A fill as the taker of the order that was just placed sees it. */
export function takerFillView(m: Decimals, f: FillRecord) {
  return {
    id: f.id,
    orderId: f.takerOrderId,
    market: f.market,
    side: f.takerSide,
    liquidity: 'taker' as const,
    price: price(m, f.price),
    quantity: qty(m, f.quantity),
    notional: price(m, f.notional),
    fee: price(m, f.takerFee),
    feeAsset: m.quote,
    createdAt: f.createdAt,
  };
}

export function accountFillView(m: Decimals, a: AccountFill) {
  return {
    id: a.fill.id,
    orderId: a.orderId,
    market: a.fill.market,
    side: a.side,
    liquidity: a.liquidity,
    price: price(m, a.fill.price),
    quantity: qty(m, a.fill.quantity),
    notional: price(m, a.fill.notional),
    fee: price(m, a.fee),
    feeAsset: m.quote,
    createdAt: a.fill.createdAt,
  };
}

export function tradeView(m: Decimals, f: FillRecord) {
  return { id: f.id, seq: f.tradeSeq, price: price(m, f.price), quantity: qty(m, f.quantity), side: f.takerSide, time: f.createdAt };
}

export function tickerView(t: Ticker) {
  const m = t.market;
  return {
    market: m.symbol,
    last: maybe(t.last, (v) => price(m, v)),
    open24h: maybe(t.open24h, (v) => price(m, v)),
    high24h: maybe(t.high24h, (v) => price(m, v)),
    low24h: maybe(t.low24h, (v) => price(m, v)),
    change24h: price(m, t.change24h),
    changePercent24h: t.changeBps === null ? null : formatAmount(t.changeBps, 2),
    volume24h: qty(m, t.volume24h),
    quoteVolume24h: price(m, t.quoteVolume24h),
    trades24h: t.trades24h,
    bestBid: maybe(t.bestBid, (v) => price(m, v)),
    bestAsk: maybe(t.bestAsk, (v) => price(m, v)),
  };
}

export function bookView(m: Decimals, s: BookSnapshot, depth: number) {
  const level = (l: { price: bigint; quantity: bigint; orders: number }) => ({ price: price(m, l.price), quantity: qty(m, l.quantity), orders: l.orders });
  return { market: s.market, seq: s.seq, bids: s.bids.slice(0, depth).map(level), asks: s.asks.slice(0, depth).map(level), timestamp: s.at };
}

export function candleView(m: Decimals, c: Candle) {
  return {
    start: c.start,
    open: price(m, c.open),
    high: price(m, c.high),
    low: price(m, c.low),
    close: price(m, c.close),
    volume: qty(m, c.volume),
    quoteVolume: price(m, c.quoteVolume),
    trades: c.trades,
  };
}

const usdc = (v: bigint) => formatAmount(v, 6);

export function positionView(p: Position) {
  const q = (v: bigint) => formatAmount(v, p.decimals);
  return {
    asset: p.asset,
    quantity: q(p.quantity),
    available: q(p.available),
    held: q(p.held),
    costBasis: usdc(p.costBasis),
    averageCost: maybe(p.averageCost, usdc),
    lastPrice: maybe(p.lastPrice, usdc),
    value: maybe(p.value, usdc),
    unrealizedPnl: maybe(p.unrealizedPnl, usdc),
    realizedPnl: usdc(p.realizedPnl),
    valuationAsset: 'USDC' as const,
  };
}

export function portfolioView(p: Portfolio) {
  return {
    valuationAsset: 'USDC' as const,
    cash: usdc(p.cash),
    positionsValue: usdc(p.positionsValue),
    totalValue: usdc(p.totalValue),
    realizedPnl: usdc(p.realizedPnl),
    unrealizedPnl: usdc(p.unrealizedPnl),
    unpriced: p.unpriced,
    positions: p.positions.map(positionView),
  };
}

export function limitView(s: LimitStatus) {
  return { asset: 'USDC' as const, limit: usdc(s.limit), overridden: s.overridden, traded24h: usdc(s.traded), open: usdc(s.open), remaining: usdc(s.remaining), maxOpenOrders: s.maxOpenOrders };
}
