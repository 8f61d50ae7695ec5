import type { Kysely, Transaction } from 'kysely';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import { displayText } from '../../lib/text.js';
import type { Store } from '../../store/db.js';
import type { Database, MarketsTable } from '../../store/schema.js';
import { formatAmount, parseAmount, pow10, readMinor } from '../money.js';

/** The quote asset every market is priced in, seeded by the trading migration. */
export const USDC = 'USDC';
export const USDC_DECIMALS = 6;

export const ASSET_SYMBOL = /^[A-Z0-9]{2,10}$/;
export const MARKET_SYMBOL = /^([A-Z0-9]{2,10})-([A-Z0-9]{2,10})$/;
export const MAX_FEE_BPS = 1000;

export interface Asset {
  symbol: string;
  name: string;
  decimals: number;
  faucet: boolean;
  createdBy: string | null;
  createdAt: number;
}

/**
 * A market BASE-QUOTE. Prices are quote minor units per whole base unit, quantities base minor
 * units; `tickSize`, `lotSize` and `minNotional` are in those units.
 */
export interface Market {
  symbol: string;
  base: string;
  quote: string;
  baseDecimals: number;
  quoteDecimals: number;
  tickSize: bigint;
  lotSize: bigint;
  minNotional: bigint;
  makerFeeBps: number;
  takerFeeBps: number;
  status: 'active' | 'delisted';
  seq: number;
  lastPrice: bigint | null;
  lastTradeAt: number | null;
  createdAt: number;
  updatedAt: number;
}

type Executor = Kysely<Database> | Transaction<Database>;

/**
 * Whether every order a market can accept settles in whole quote minor units: price (a multiple
 * of the tick) × quantity (a multiple of the lot) must be divisible by 10^baseDecimals, so the
 * notional price × quantity / 10^baseDecimals is exact. Holds iff tick × lot is such a multiple.
 */
export function termsSettleExactly(tickSize: bigint, lotSize: bigint, baseDecimals: number): boolean {
  return (tickSize * lotSize) % pow10(baseDecimals) === 0n;
}

/**
 * Sensible terms for a new BASE-USDC market (token launches): a tick of one quote minor unit,
 * the smallest lot that settles exactly, a minimum order of 1 USDC.
 */
export function defaultMarketTerms(baseDecimals: number, quoteDecimals = USDC_DECIMALS): { tickSize: bigint; lotSize: bigint; minNotional: bigint } {
  const tickSize = 1n;
  return { tickSize, lotSize: pow10(baseDecimals), minNotional: pow10(quoteDecimals) };
}

/** The notional (quote minor units) of `quantity` base minor units at `price`. */
export function notionalOf(market: Pick<Market, 'baseDecimals'>, price: bigint, quantity: bigint): bigint {
  return (price * quantity) / pow10(market.baseDecimals);
}

export interface AssetInput {
  symbol: string;
  name: string;
  decimals: number;
  faucet?: boolean;
}

export interface MarketInput {
  base: string;
  quote: string;
  /** Decimal strings at the edge; bigint minor units from code (token launches). */
  tickSize: string | bigint;
  lotSize: string | bigint;
  minNotional: string | bigint;
  makerFeeBps?: number;
  takerFeeBps?: number;
}

function toMarket(row: MarketsTable, base: Asset, quote: Asset): Market {
  return {
    symbol: row.symbol,
    base: row.base,
    quote: row.quote,
    baseDecimals: base.decimals,
    quoteDecimals: quote.decimals,
    tickSize: readMinor(row.tick_size),
    lotSize: readMinor(row.lot_size),
    minNotional: readMinor(row.min_notional),
    makerFeeBps: Number(row.maker_fee_bps),
    takerFeeBps: Number(row.taker_fee_bps),
    status: row.status,
    seq: Number(row.seq),
    lastPrice: row.last_price === null ? null : readMinor(row.last_price),
    lastTradeAt: row.last_trade_at === null ? null : Number(row.last_trade_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/**
 * Assets and markets. Assets never change once created (their decimals are baked into every
 * amount), so they are cached for good; market rows are read from the store whenever an
 * authoritative answer matters (the order path reads them under a lock) and cached for parsing.
 */
export class Assets {
  private readonly assets = new Map<string, Asset>();
  private readonly markets = new Map<string, Market>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly defaults: { makerFeeBps: number; takerFeeBps: number },
  ) {}

  async asset(symbol: string, db: Executor = this.store.db): Promise<Asset | undefined> {
    const cached = this.assets.get(symbol);
    if (cached) return cached;
    if (!ASSET_SYMBOL.test(symbol)) return undefined;
    const row = await db.selectFrom('assets').selectAll().where('symbol', '=', symbol).executeTakeFirst();
    if (!row) return undefined;
    const asset: Asset = { symbol: row.symbol, name: row.name, decimals: Number(row.decimals), faucet: Number(row.faucet) === 1, createdBy: row.created_by, createdAt: Number(row.created_at) };
    // Only committed rows are cached: inside a transaction the row may be its own uncommitted
    // insert (a token launch), which a rollback would leave behind in the cache.
    if (db === this.store.db) this.assets.set(symbol, asset);
    return asset;
  }

  async listAssets(): Promise<Asset[]> {
    const rows = await this.store.db.selectFrom('assets').select('symbol').orderBy('symbol').execute();
    const out: Asset[] = [];
    for (const r of rows) {
      const a = await this.asset(r.symbol);
      if (a) out.push(a);
    }
    return out;
  }

  /**
   * Converts a market row. A row read outside any transaction is cached; one read inside a
   * transaction (`db` a Transaction) is not: it may carry that transaction's uncommitted changes (a
   * delisting whose batch then fails), which a rollback would leave behind in the cache.
   */
  async fromRow(row: MarketsTable, db: Executor = this.store.db): Promise<Market> {
    const [base, quote] = await Promise.all([this.asset(row.base, db), this.asset(row.quote, db)]);
    if (!base || !quote) throw new Error(`market ${row.symbol} names an unknown asset`);
    const market = toMarket(row, base, quote);
    if (db === this.store.db) this.markets.set(market.symbol, market);
    return market;
  }

  /** A market from the cache, read from the store on a miss (or always with `fresh`). */
  async market(symbol: string, options: { fresh?: boolean } = {}): Promise<Market | undefined> {
    if (!options.fresh) {
      const cached = this.markets.get(symbol);
      if (cached) return cached;
    }
    if (!MARKET_SYMBOL.test(symbol)) return undefined;
    const row = await this.store.db.selectFrom('markets').selectAll().where('symbol', '=', symbol).executeTakeFirst();
    return row ? this.fromRow(row) : undefined;
  }

  async listMarkets(options: { includeDelisted?: boolean } = {}): Promise<Market[]> {
    let q = this.store.db.selectFrom('markets').selectAll().orderBy('symbol');
    if (!options.includeDelisted) q = q.where('status', '=', 'active');
    const rows = await q.execute();
    const out: Market[] = [];
    for (const r of rows) out.push(await this.fromRow(r));
    return out;
  }

  /** Creates an asset. `conflict` when the symbol exists. Pass a transaction to join one. */
  async createAsset(input: AssetInput, by: string, db: Executor = this.store.db): Promise<Result<Asset, 'validation_failed' | 'conflict'>> {
    if (!ASSET_SYMBOL.test(input.symbol)) return fail('validation_failed', 'symbol must be 2–10 uppercase letters or digits');
    if (!Number.isInteger(input.decimals) || input.decimals < 0 || input.decimals > 18) return fail('validation_failed', 'decimals must be a whole number from 0 to 18');
    const checkedName = displayText(input.name, 'name', 64);
    if (!checkedName.ok) return checkedName;
    const name = checkedName.value;
    const now = this.clock.now();
    const inserted = await db
      .insertInto('assets')
      .values({ symbol: input.symbol, name, decimals: input.decimals, faucet: input.faucet ? 1 : 0, created_by: by, created_at: now, updated_at: now })
      .onConflict((oc) => oc.column('symbol').doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) return fail('conflict', `Asset ${input.symbol} already exists`);
    const asset: Asset = { symbol: input.symbol, name, decimals: input.decimals, faucet: !!input.faucet, createdBy: by, createdAt: now };
    if (db === this.store.db) this.assets.set(asset.symbol, asset);
    return ok(asset);
  }

  /**
   * Lists a market (or relists a delisted one with new terms). Markets are quoted in USDC: daily
   * limits and portfolio values are counted in it. `conflict` when the market is already active.
   */
  async listMarket(input: MarketInput, db: Executor = this.store.db): Promise<Result<Market, 'validation_failed' | 'conflict'>> {
    if (input.quote !== USDC) return fail('validation_failed', 'markets are quoted in USDC');
    if (input.base === input.quote) return fail('validation_failed', 'base and quote must differ');
    const base = await this.asset(input.base, db);
    const quote = await this.asset(input.quote, db);
    if (!base) return fail('validation_failed', `Unknown asset ${input.base}`);
    if (!quote) return fail('validation_failed', `Unknown asset ${input.quote}`);
    const amount = (v: string | bigint, decimals: number, what: string, positive = true): Result<bigint, 'validation_failed'> =>
      typeof v === 'bigint' ? (v > 0n || (!positive && v === 0n) ? ok(v) : fail('validation_failed', `${what} must be positive`)) : parseAmount(v, decimals, what, { positive });
    const tick = amount(input.tickSize, quote.decimals, 'tickSize');
    if (!tick.ok) return tick;
    const lot = amount(input.lotSize, base.decimals, 'lotSize');
    if (!lot.ok) return lot;
    const minNotional = amount(input.minNotional, quote.decimals, 'minNotional', false);
    if (!minNotional.ok) return minNotional;
    if (!termsSettleExactly(tick.value, lot.value, base.decimals)) {
      return fail(
        'validation_failed',
        `tickSize × lotSize must be a whole number of ${quote.symbol} minor units per trade; with this tick use a lotSize that is a multiple of ${formatAmount(pow10(base.decimals) / gcd(tick.value, pow10(base.decimals)), base.decimals)}`,
      );
    }
    const makerFeeBps = input.makerFeeBps ?? this.defaults.makerFeeBps;
    const takerFeeBps = input.takerFeeBps ?? this.defaults.takerFeeBps;
    for (const [what, v] of [['makerFeeBps', makerFeeBps], ['takerFeeBps', takerFeeBps]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > MAX_FEE_BPS) return fail('validation_failed', `${what} must be a whole number from 0 to ${MAX_FEE_BPS}`);
    }
    const symbol = `${base.symbol}-${quote.symbol}`;
    const now = this.clock.now();
    const terms = { tick_size: tick.value.toString(), lot_size: lot.value.toString(), min_notional: minNotional.value.toString(), maker_fee_bps: makerFeeBps, taker_fee_bps: takerFeeBps };
    const existing = await db.selectFrom('markets').select(['status']).where('symbol', '=', symbol).executeTakeFirst();
    if (existing?.status === 'active') return fail('conflict', `Market ${symbol} is already listed`);
    if (existing) {
      // A delisted market has no resting orders (delisting cancelled them), so its terms may change;
      // the seq bump makes every process rebuild its book with the new terms.
      // Only while still delisted, and the seq bumped from the row's own value: a relisting that
      // raced another (both read `delisted`) updates nothing and is a conflict, not a success
      // reporting the winner's terms as its own.
      const updated = await db
        .updateTable('markets')
        .set((eb) => ({ ...terms, status: 'active', seq: eb('seq', '+', 1), updated_at: now }))
        .where('symbol', '=', symbol)
        .where('status', '=', 'delisted')
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows ?? 0n) !== 1) return fail('conflict', `Market ${symbol} is already listed`);
    } else {
      const inserted = await db
        .insertInto('markets')
        .values({ symbol, base: base.symbol, quote: quote.symbol, ...terms, status: 'active', seq: 0, trade_seq: 0, last_price: null, last_trade_at: null, created_at: now, updated_at: now })
        .onConflict((oc) => oc.column('symbol').doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) return fail('conflict', `Market ${symbol} is already listed`);
    }
    const row = await db.selectFrom('markets').selectAll().where('symbol', '=', symbol).executeTakeFirstOrThrow();
    const market = toMarket(row, base, quote);
    if (db === this.store.db) this.markets.set(symbol, market);
    return ok(market);
  }

  /** Updates the cached copy (the order path calls it with rows it read under the market lock). */
  remember(market: Market): void {
    this.markets.set(market.symbol, market);
  }

  forget(symbol: string): void {
    this.markets.delete(symbol);
  }
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a < 0n ? -a : a;
}
