/** Candle periods served by the API, in ms. Candles are built from fills as they commit. */
export const CANDLE_PERIODS = { '1m': 60_000, '5m': 300_000, '1h': 3_600_000, '1d': 86_400_000 } as const;
export type CandlePeriod = keyof typeof CANDLE_PERIODS;
export const PERIOD_NAMES = Object.keys(CANDLE_PERIODS) as CandlePeriod[];

export interface Candle {
  start: number;
  open: bigint;
  high: bigint;
  low: bigint;
  close: bigint;
  /** Base minor units traded. */
  volume: bigint;
  /** Quote minor units traded. */
  quoteVolume: bigint;
  trades: number;
}

export function periodStart(at: number, period: CandlePeriod): number {
  const ms = CANDLE_PERIODS[period];
  return Math.floor(at / ms) * ms;
}

/** Folds trades (in time order) into a candle, starting one when there is none yet. */
export function foldTrades(candle: Candle | undefined, start: number, trades: readonly { price: bigint; quantity: bigint; notional: bigint }[]): Candle | undefined {
  let c = candle ? { ...candle } : undefined;
  for (const t of trades) {
    if (!c) {
      c = { start, open: t.price, high: t.price, low: t.price, close: t.price, volume: 0n, quoteVolume: 0n, trades: 0 };
    }
    if (t.price > c.high) c.high = t.price;
    if (t.price < c.low) c.low = t.price;
    c.close = t.price;
    c.volume += t.quantity;
    c.quoteVolume += t.notional;
    c.trades += 1;
  }
  return c;
}
