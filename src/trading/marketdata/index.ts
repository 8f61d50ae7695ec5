import type { Clock } from '../../lib/clock.js';
import type { Store } from '../../store/db.js';
import type { Assets, Market } from '../assets/index.js';
import { readMinor } from '../money.js';
import { firstWindowMinute } from '../orders/batch.js';
import type { OrdersService } from '../orders/service.js';
import { CANDLE_PERIODS, type Candle, type CandlePeriod } from './candles.js';

export { CANDLE_PERIODS, PERIOD_NAMES, type Candle, type CandlePeriod } from './candles.js';

export interface Ticker {
  market: Market;
  last: bigint | null;
  /** Price 24 h ago (the first trade in the window), or the last price when nothing traded. */
  open24h: bigint | null;
  high24h: bigint | null;
  low24h: bigint | null;
  change24h: bigint;
  /** Change in basis points of open24h, truncated toward zero (null when there is no open). Exact: never a float. */
  changeBps: bigint | null;
  volume24h: bigint;
  quoteVolume24h: bigint;
  trades24h: number;
  bestBid: bigint | null;
  bestAsk: bigint | null;
}

/**
 * Market data built from what the order transactions commit: the book snapshot published after
 * each commit (depth, best bid/ask), fills (recent trades) and candles (1m/5m/1h/1d, written with
 * the fills). 24 h statistics come from 1-minute candles, so the window moves by whole minutes
 * (it starts with the minute that holds the instant 24 h back).
 */
export class MarketData {
  constructor(
    private readonly deps: { store: Store; clock: Clock; assets: Assets; orders: OrdersService },
  ) {}

  async tickers(): Promise<Ticker[]> {
    // The minute that holds the instant 24 h back counts too (the daily limit's window): a trade late
    // in it is less than 24 h old.
    const since = firstWindowMinute(this.deps.clock.now()) * 60_000;
    // The markets (last price) and their 1-minute candles in one statement, so one snapshot: read
    // apart, a trade committing in between would show in the one and not the other (a market with
    // no last price but a trade in its 24 h, or a last price its candles never reached).
    const rows = await this.deps.store.db
      .selectFrom('markets as m')
      .leftJoin('candles as c', (join) => join.onRef('c.market', '=', 'm.symbol').on('c.period', '=', '1m').on('c.start', '>=', since))
      .selectAll('m')
      .select(['c.start as c_start', 'c.open as c_open', 'c.high as c_high', 'c.low as c_low', 'c.volume as c_volume', 'c.quote_volume as c_quote_volume', 'c.trades as c_trades'])
      .where('m.status', '=', 'active')
      .orderBy('m.symbol')
      .orderBy('c.start')
      .execute();
    const markets: Market[] = [];
    const byMarket = new Map<string, (typeof rows)[number][]>();
    for (const r of rows) {
      let list = byMarket.get(r.symbol);
      if (!list) {
        markets.push(await this.deps.assets.fromRow(r));
        byMarket.set(r.symbol, (list = []));
      }
      if (r.c_start !== null) list.push(r);
    }
    const out: Ticker[] = [];
    for (const market of markets) {
      const candles = byMarket.get(market.symbol) ?? [];
      const snap = await this.deps.orders.snapshot(market.symbol);
      let high: bigint | null = null;
      let low: bigint | null = null;
      let volume = 0n;
      let quoteVolume = 0n;
      let trades = 0;
      for (const c of candles) {
        const h = readMinor(c.c_high);
        const l = readMinor(c.c_low);
        if (high === null || h > high) high = h;
        if (low === null || l < low) low = l;
        volume += readMinor(c.c_volume);
        quoteVolume += readMinor(c.c_quote_volume);
        trades += Number(c.c_trades);
      }
      const last = market.lastPrice;
      const open = candles.length > 0 ? readMinor(candles[0]!.c_open) : last;
      const change = last !== null && open !== null ? last - open : 0n;
      out.push({
        market,
        last,
        open24h: open,
        high24h: high,
        low24h: low,
        change24h: change,
        changeBps: open !== null && open > 0n ? (change * 10_000n) / open : null,
        volume24h: volume,
        quoteVolume24h: quoteVolume,
        trades24h: trades,
        bestBid: snap?.bids[0]?.price ?? null,
        bestAsk: snap?.asks[0]?.price ?? null,
      });
    }
    return out;
  }

  async candles(market: string, period: CandlePeriod, range: { from?: number | undefined; to?: number | undefined; limit: number }): Promise<Candle[]> {
    const ms = CANDLE_PERIODS[period];
    const to = range.to ?? this.deps.clock.now();
    // Without `from`: the `limit` periods that end with the one holding `to` (the current candle).
    const from = range.from ?? Math.floor(to / ms) * ms - ms * (range.limit - 1);
    const rows = await this.deps.store.db
      .selectFrom('candles')
      .selectAll()
      .where('market', '=', market)
      .where('period', '=', period)
      .where('start', '>=', Math.floor(from / ms) * ms)
      .where('start', '<=', to)
      .orderBy('start')
      .limit(range.limit)
      .execute();
    return rows.map((r) => ({
      start: Number(r.start),
      open: readMinor(r.open),
      high: readMinor(r.high),
      low: readMinor(r.low),
      close: readMinor(r.close),
      volume: readMinor(r.volume),
      quoteVolume: readMinor(r.quote_volume),
      trades: Number(r.trades),
    }));
  }
}
