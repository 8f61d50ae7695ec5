import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import type { Decimal, EpochMs } from './common.js';

/** A listed market (`GET /api/v1/market/markets`). Prices in the quote asset, quantities in the base. */
export interface Market {
  /** `BASE-QUOTE`, e.g. `MOON-USDC`. */
  symbol: string;
  base: string;
  quote: string;
  baseDecimals: number;
  quoteDecimals: number;
  tickSize: Decimal;
  lotSize: Decimal;
  /** The smallest order value, in the quote asset. */
  minNotional: Decimal;
  /** Basis points of the quote amount. */
  makerFeeBps: number;
  takerFeeBps: number;
  status: 'active' | 'delisted' | (string & {});
  /** The last traded price; null before the first trade. */
  lastPrice: Decimal | null;
}

/** An asset the exchange knows (`GET /api/v1/market/assets`): amounts of it carry `decimals` places. */
export interface Asset {
  symbol: string;
  name: string;
  decimals: number;
  /** Whether the sandbox faucet hands it out. */
  faucet: boolean;
  createdAt: EpochMs;
}

/** 24-hour statistics of one market (`GET /api/v1/market/tickers`). */
export interface Ticker {
  market: string;
  last: Decimal | null;
  open24h: Decimal | null;
  high24h: Decimal | null;
  low24h: Decimal | null;
  /** Signed: `last - open24h` (`"0"` while the market has no price). */
  change24h: Decimal;
  /** Signed percentage, e.g. `"-1.25"`; null without an opening price. */
  changePercent24h: Decimal | null;
  /** In the base asset. */
  volume24h: Decimal;
  /** In the quote asset. */
  quoteVolume24h: Decimal;
  trades24h: number;
  bestBid: Decimal | null;
  bestAsk: Decimal | null;
}

/** One aggregated price level. */
export interface PriceLevel {
  price: Decimal;
  quantity: Decimal;
  /** How many resting orders make up the level. */
  orders: number;
}

/** `GET /api/v1/market/orderbook/:market`: price levels, best first. */
export interface OrderBook {
  market: string;
  /** The book's sequence number (it grows with every change). */
  seq: number;
  bids: PriceLevel[];
  asks: PriceLevel[];
  /** When the snapshot was taken. */
  timestamp: EpochMs;
}

/** A trade of the market (`GET /api/v1/market/trades/:market`). */
export interface PublicTrade {
  id: string;
  /** The market's trade sequence number. */
  seq: number;
  price: Decimal;
  quantity: Decimal;
  /** The taker's side. */
  side: 'buy' | 'sell';
  time: EpochMs;
}

export type CandleInterval = '1m' | '5m' | '1h' | '1d';

/** OHLCV built from fills (`GET /api/v1/market/candles/:market`). */
export interface Candle {
  /** The start of the candle's interval. */
  start: EpochMs;
  open: Decimal;
  high: Decimal;
  low: Decimal;
  close: Decimal;
  /** In the base asset. */
  volume: Decimal;
  /** In the quote asset. */
  quoteVolume: Decimal;
  trades: number;
}

export interface OrderBookQuery {
  /** Levels per side, 1–100 (default 20). */
  depth?: number;
}
export interface TradesQuery {
  /** 1–500 (default 50). */
  limit?: number;
}
export interface CandlesQuery {
  /** Default `1m`. */
  interval?: CandleInterval;
  from?: EpochMs;
  to?: EpochMs;
  /** 1–1000 (default 500). */
  limit?: number;
}

/** Market data (`market:read`; 100 requests/s). List routes answer `{ markets }`, `{ tickers }`, …: these methods return the lists. */
export class MarketApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `GET /api/v1/market/markets` (the server answers `{ markets }`; this returns the list). */
  async markets(options?: CallOptions): Promise<Market[]> {
    const { markets } = await this.#requester.call<{ markets: Market[] }>({ method: 'GET', path: '/api/v1/market/markets', list: 'markets', auth: 'any', options });
    return markets;
  }

  /** `GET /api/v1/market/assets` (the server answers `{ assets }`; this returns the list). */
  async assets(options?: CallOptions): Promise<Asset[]> {
    const { assets } = await this.#requester.call<{ assets: Asset[] }>({ method: 'GET', path: '/api/v1/market/assets', list: 'assets', auth: 'any', options });
    return assets;
  }

  /** `GET /api/v1/market/tickers` (the server answers `{ tickers }`; this returns the list). */
  async tickers(options?: CallOptions): Promise<Ticker[]> {
    const { tickers } = await this.#requester.call<{ tickers: Ticker[] }>({ method: 'GET', path: '/api/v1/market/tickers', list: 'tickers', auth: 'any', options });
    return tickers;
  }

  /** `GET /api/v1/market/orderbook/:market` */
  orderBook(market: string, query: OrderBookQuery = {}, options?: CallOptions): Promise<OrderBook> {
    return this.#requester.call({ method: 'GET', path: `/api/v1/market/orderbook/${pathParam(market)}`, query, auth: 'any', options });
  }

  /** `GET /api/v1/market/trades/:market`: newest first (the server answers `{ market, trades }`; this returns the list). */
  async trades(market: string, query: TradesQuery = {}, options?: CallOptions): Promise<PublicTrade[]> {
    const { trades } = await this.#requester.call<{ market: string; trades: PublicTrade[] }>({ method: 'GET', path: `/api/v1/market/trades/${pathParam(market)}`, query, list: 'trades', auth: 'any', options });
    return trades;
  }

  /** `GET /api/v1/market/candles/:market?interval=&from=&to=&limit=` (the server answers `{ market, interval, candles }`; this returns the list). */
  async candles(market: string, query: CandlesQuery = {}, options?: CallOptions): Promise<Candle[]> {
    const { candles } = await this.#requester.call<{ market: string; interval: CandleInterval; candles: Candle[] }>({
      method: 'GET',
      path: `/api/v1/market/candles/${pathParam(market)}`,
      query,
      list: 'candles',
      auth: 'any',
      options,
    });
    return candles;
  }
}
