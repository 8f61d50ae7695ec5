import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import type { Decimal, EpochMs } from './common.js';

export interface Market {
  /** `BASE-QUOTE`, e.g. `MOON-USDC`. */
  symbol: string;
  base: string;
  quote: string;
  tickSize: Decimal;
  lotSize: Decimal;
  minNotional: Decimal;
  status: 'active' | 'halted' | 'delisted' | (string & {});
}

export interface Ticker {
  market: string;
  last: Decimal | null;
  change24h: Decimal | null;
  volume24h: Decimal;
  bestBid: Decimal | null;
  bestAsk: Decimal | null;
}

/** One aggregated price level: `[price, quantity]`. */
export type PriceLevel = [price: Decimal, quantity: Decimal];

export interface OrderBook {
  market: string;
  bids: PriceLevel[];
  asks: PriceLevel[];
  at?: EpochMs;
}

export interface PublicTrade {
  id: string;
  market: string;
  price: Decimal;
  quantity: Decimal;
  /** The taker's side. */
  side: 'buy' | 'sell';
  at: EpochMs;
}

export type CandleInterval = '1m' | '5m' | '1h' | '1d';

export interface Candle {
  openTime: EpochMs;
  open: Decimal;
  high: Decimal;
  low: Decimal;
  close: Decimal;
  volume: Decimal;
}

export interface OrderBookQuery {
  depth?: number;
}
export interface TradesQuery {
  limit?: number;
}
export interface CandlesQuery {
  interval: CandleInterval;
  from?: EpochMs;
  to?: EpochMs;
}

/** Market data (`market:read`; 100 requests/s). */
export class MarketApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `GET /api/v1/market/markets` */
  markets(options?: CallOptions): Promise<Market[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/market/markets', auth: 'any', options });
  }

  /** `GET /api/v1/market/tickers` */
  tickers(options?: CallOptions): Promise<Ticker[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/market/tickers', auth: 'any', options });
  }

  /** `GET /api/v1/market/orderbook/:market` */
  orderBook(market: string, query: OrderBookQuery = {}, options?: CallOptions): Promise<OrderBook> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/market/orderbook/${pathParam(market)}`, query, auth: 'any', options });
  }

  /** `GET /api/v1/market/trades/:market` */
  trades(market: string, query: TradesQuery = {}, options?: CallOptions): Promise<PublicTrade[]> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/market/trades/${pathParam(market)}`, query, auth: 'any', options });
  }

  /** `GET /api/v1/market/candles/:market?interval=&from=&to=` */
  candles(market: string, query: CandlesQuery, options?: CallOptions): Promise<Candle[]> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/market/candles/${pathParam(market)}`, query, auth: 'any', options });
  }
}
