import { sql, type Transaction } from 'kysely';
import { insertAll } from '../../store/bulk.js';
import type { Dialect } from '../../store/db.js';
import type { Database, MarketsTable } from '../../store/schema.js';
import type { HaltStatus } from '../halt.js';
import { LedgerTx } from '../ledger/ledger-tx.js';
import { SYSTEM_OWNERS } from '../ledger/owners.js';
import { foldTrades, PERIOD_NAMES, periodStart, type Candle } from '../marketdata/candles.js';
import { readMinor } from '../money.js';
import type { CostState } from '../portfolio/average-cost.js';
import { chunks } from '../retry.js';
import { upsertRows } from '../upsert.js';
import { fillToRow, historyRows, orderFromRow, orderToRow } from './records.js';
import { OPEN_STATUSES, type FillRecord, type OrderRecord, type TradingEvent } from './types.js';

/**
 * Rolling window of the daily trading limit, in minutes (usage is kept per minute). The window
 * counts the minute exactly 24 h back too: a trade late in that minute is less than 24 h old.
 */
export const LIMIT_WINDOW_MINUTES = 24 * 60;

/** The first minute (in epoch minutes) of the rolling 24 h window at `now` (ms): the one that holds the instant 24 h back. */
export function firstWindowMinute(now: number): number {
  return Math.floor(now / 60_000) - LIMIT_WINDOW_MINUTES;
}

/** A market row as locked by the batch, with the changes the batch makes to it. */
export interface LockedMarket {
  row: MarketsTable;
  seq: number;
  tradeSeq: number;
  lastPrice: bigint | null;
  lastTradeAt: number | null;
  status: 'active' | 'delisted';
  trades: { price: bigint; quantity: bigint; notional: bigint }[];
}

interface OrderState {
  rec: OrderRecord;
  isNew: boolean;
  dirty: boolean;
}

interface Keyed<T> {
  value: T;
  /** As read (null: no row yet). */
  orig: T | null;
  version: number;
}

const byKey = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/**
 * The unit of work of one group-committed transaction of order commands. It locks the markets
 * involved, reads what the commands need once, lets them change it in memory, and writes it all
 * in `flush`, in one fixed order (markets → orders → fills → account history → ledger →
 * positions → usage → exposure → candles), each table in key order, with optimistic checks where
 * another market's batch could touch the same row. Concurrent batches in other processes
 * therefore never deadlock and never lose an update: a lost race throws ConcurrentUpdateError and
 * the batch is retried.
 */
export class Batch {
  readonly ledger: LedgerTx;
  readonly events: TradingEvent[] = [];
  readonly markets = new Map<string, LockedMarket>();
  private readonly orders = new Map<string, OrderState>();
  private readonly missingOrders = new Set<string>();
  private readonly clientIds = new Map<string, string>();
  private readonly fills: FillRecord[] = [];
  private readonly positions = new Map<string, Keyed<CostState>>();
  private readonly positionsLoaded = new Set<string>();
  private readonly usage = new Map<string, { window: bigint; minute: Keyed<bigint> }>();
  private readonly exposure = new Map<string, Keyed<bigint>>();
  private readonly limits = new Map<string, bigint | null>();
  /** Admin overrides of the open-orders cap (null: the configured default applies). */
  private readonly openCaps = new Map<string, number | null>();
  /** Accounts whose daily limit an accepted order was checked against (see limitChecked). */
  private readonly limitChecked = new Set<string>();
  readonly minute: number;

  constructor(
    readonly trx: Transaction<Database>,
    readonly now: number,
    private readonly dialect: Dialect,
    /** Halts in force for the markets of the batch's placements and closes, read when it began. */
    readonly halts: ReadonlyMap<string, HaltStatus> = new Map(),
  ) {
    this.ledger = new LedgerTx(trx, now);
    this.minute = Math.floor(now / 60_000);
  }

  /** Locks the market rows (PostgreSQL FOR UPDATE, in symbol order; SQLite is single-writer). */
  async lockMarkets(symbols: Iterable<string>): Promise<void> {
    const wanted = [...new Set(symbols)].filter((s) => !this.markets.has(s)).sort();
    if (wanted.length === 0) return;
    let q = this.trx.selectFrom('markets').selectAll().where('symbol', 'in', wanted).orderBy('symbol');
    if (this.dialect === 'postgres') q = q.forUpdate();
    for (const row of await q.execute()) {
      this.markets.set(row.symbol, {
        row,
        seq: Number(row.seq),
        tradeSeq: Number(row.trade_seq),
        lastPrice: row.last_price === null ? null : readMinor(row.last_price),
        lastTradeAt: row.last_trade_at === null ? null : Number(row.last_trade_at),
        status: row.status,
        trades: [],
      });
    }
  }

  /** Loads what the accounts' orders need: balances, positions, limit usage and overrides (daily limit, open-orders cap). */
  async loadAccounts(accountIds: Iterable<string>): Promise<void> {
    const ids = [...new Set(accountIds)];
    await this.ledger.loadOwners([...ids, SYSTEM_OWNERS.fees]);
    const fresh = ids.filter((id) => !this.positionsLoaded.has(id));
    if (fresh.length === 0) return;
    for (const part of chunks(fresh, 300)) {
      const [positions, usage, exposure, overrides] = await Promise.all([
        this.trx.selectFrom('positions').select(['account_id', 'asset', 'cost_basis', 'realized_pnl', 'version']).where('account_id', 'in', part).execute(),
        this.trx.selectFrom('trading_usage').select(['account_id', 'minute', 'notional', 'version']).where('account_id', 'in', part).where('minute', '>=', firstWindowMinute(this.now)).execute(),
        this.trx.selectFrom('trading_exposure').select(['account_id', 'open_notional', 'version']).where('account_id', 'in', part).execute(),
        // Both overrides in one statement: each statement of a transaction is a round trip of its own
        // on PostgreSQL (one connection does not pipeline them), paid by every batch.
        this.trx
          .selectFrom('trading_limits')
          .select(['account_id', 'daily_notional', sql<number | null>`null`.as('max_open_orders')])
          .where('account_id', 'in', part)
          .unionAll(this.trx.selectFrom('open_orders_limits').select(['account_id', sql<string>`null`.as('daily_notional'), sql<number | null>`max_open_orders`.as('max_open_orders')]).where('account_id', 'in', part))
          .execute(),
      ]);
      for (const p of positions) {
        const state = { cost: readMinor(p.cost_basis), realized: readMinor(p.realized_pnl) };
        this.positions.set(`${p.account_id}\u0001${p.asset}`, { value: state, orig: { ...state }, version: Number(p.version) });
      }
      for (const id of part) {
        this.positionsLoaded.add(id);
        this.usage.set(id, { window: 0n, minute: { value: 0n, orig: null, version: 0 } });
        this.exposure.set(id, { value: 0n, orig: null, version: 0 });
        this.limits.set(id, null);
        this.openCaps.set(id, null);
      }
      for (const u of usage) {
        const entry = this.usage.get(u.account_id)!;
        const n = readMinor(u.notional);
        entry.window += n;
        if (Number(u.minute) === this.minute) entry.minute = { value: n, orig: n, version: Number(u.version) };
      }
      for (const e of exposure) {
        const n = readMinor(e.open_notional);
        this.exposure.set(e.account_id, { value: n, orig: n, version: Number(e.version) });
      }
      for (const o of overrides) {
        if (o.max_open_orders !== null) this.openCaps.set(o.account_id, Number(o.max_open_orders));
        else this.limits.set(o.account_id, readMinor(o.daily_notional));
      }
    }
  }

  /** Loads order rows (makers, cancels). */
  async loadOrders(ids: Iterable<string>): Promise<void> {
    const wanted = [...new Set(ids)].filter((id) => !this.orders.has(id) && !this.missingOrders.has(id));
    if (wanted.length === 0) return;
    for (const part of chunks(wanted, 500)) {
      const rows = await this.trx.selectFrom('orders').selectAll().where('id', 'in', part).execute();
      for (const r of rows) this.orders.set(r.id, { rec: orderFromRow(r), isNew: false, dirty: false });
      for (const id of part) if (!this.orders.has(id)) this.missingOrders.add(id);
    }
  }

  /** Finds existing orders by (account, clientOrderId) in one query. */
  async loadClientOrderIds(pairs: readonly { accountId: string; clientOrderId: string }[]): Promise<void> {
    const wanted = pairs.filter((p) => !this.clientIds.has(`${p.accountId}\u0001${p.clientOrderId}`));
    if (wanted.length === 0) return;
    for (const part of chunks(wanted, 250)) {
      // One index probe per pair; `account_id in (…) and client_order_id in (…)` would probe every
      // account with every id of the batch.
      const rows = await this.trx
        .selectFrom('orders')
        .selectAll()
        .where((eb) => eb.or(part.map((p) => eb.and([eb('account_id', '=', p.accountId), eb('client_order_id', '=', p.clientOrderId)]))))
        .execute();
      for (const r of rows) {
        if (!this.orders.has(r.id)) this.orders.set(r.id, { rec: orderFromRow(r), isNew: false, dirty: false });
        this.clientIds.set(`${r.account_id}\u0001${r.client_order_id}`, r.id);
      }
    }
  }

  clientOrder(accountId: string, clientOrderId: string): OrderRecord | undefined {
    const id = this.clientIds.get(`${accountId}\u0001${clientOrderId}`);
    return id ? this.orders.get(id)?.rec : undefined;
  }

  order(id: string): OrderRecord | undefined {
    return this.orders.get(id)?.rec;
  }

  /**
   * Takes an order record the service keeps in memory beside its book (a resting maker) into the
   * batch, so that it need not be read; it is written back in flush. The batch holds one record per
   * order: if a copy of this order was read from the store earlier in the batch (a retried
   * clientOrderId is looked up before any command runs), the resting record replaces it, since it
   * is the one the book's fills and cancels change and the one flush must write.
   */
  adoptOrder(rec: OrderRecord): void {
    const s = this.orders.get(rec.id);
    if (!s) {
      this.orders.set(rec.id, { rec, isNew: false, dirty: false });
      return;
    }
    if (s.rec === rec) return;
    // Nothing changes a stored copy of a resting order: only its resting record is changed.
    if (s.dirty || s.isNew) throw new Error(`batch: order ${rec.id} was changed through a copy of its resting record`);
    s.rec = rec;
  }

  addOrder(rec: OrderRecord): void {
    this.orders.set(rec.id, { rec, isNew: true, dirty: true });
    if (rec.clientOrderId !== null) this.clientIds.set(`${rec.accountId}\u0001${rec.clientOrderId}`, rec.id);
  }

  /** Marks an order changed (its record was mutated in place). */
  touchOrder(id: string): void {
    const s = this.orders.get(id);
    if (!s) throw new Error(`batch: order ${id} not loaded`);
    s.dirty = true;
    s.rec.updatedAt = this.now;
  }

  /** Fills this batch created for a taker order (not yet in the store). */
  newFillsOf(takerOrderId: string): FillRecord[] {
    return this.fills.filter((f) => f.takerOrderId === takerOrderId);
  }

  addFill(fill: FillRecord, trade: { market: string }): void {
    this.fills.push(fill);
    const m = this.markets.get(trade.market)!;
    m.trades.push({ price: fill.price, quantity: fill.quantity, notional: fill.notional });
    m.lastPrice = fill.price;
    m.lastTradeAt = fill.createdAt;
  }

  position(accountId: string, asset: string): CostState {
    if (!this.positionsLoaded.has(accountId)) throw new Error(`batch: positions of ${accountId} not loaded`);
    const k = `${accountId}\u0001${asset}`;
    let p = this.positions.get(k);
    if (!p) this.positions.set(k, (p = { value: { cost: 0n, realized: 0n }, orig: null, version: 0 }));
    return p.value;
  }

  /** Notional traded in the window plus notional resting: what counts against the daily limit. */
  usageOf(accountId: string): bigint {
    const u = this.usage.get(accountId);
    const e = this.exposure.get(accountId);
    if (!u || !e) throw new Error(`batch: usage of ${accountId} not loaded`);
    return u.window + e.value;
  }

  addTraded(accountId: string, notional: bigint): void {
    const u = this.usage.get(accountId)!;
    u.window += notional;
    u.minute.value += notional;
  }

  addExposure(accountId: string, delta: bigint): void {
    const e = this.exposure.get(accountId)!;
    e.value += delta;
    // Rounding of partially filled remainders can leave a unit behind; exposure is never negative.
    if (e.value < 0n) e.value = 0n;
  }

  limitOverride(accountId: string): bigint | null {
    return this.limits.get(accountId) ?? null;
  }

  /** The admin's override of the account's open-orders cap per market, or null (the default applies). */
  openOrdersOverride(accountId: string): number | null {
    return this.openCaps.get(accountId) ?? null;
  }

  /**
   * An order was accepted against the account's daily limit as read by this batch. Its exposure
   * row is then written (version bumped) even if unchanged: two batches in two processes that both
   * checked the limit (orders in different markets, each filling or resting) then conflict on that
   * row, and the loser retries and sees the winner's usage, so together they cannot pass the limit.
   */
  noteLimitChecked(accountId: string): void {
    this.limitChecked.add(accountId);
  }

  /** Writes everything, in the fixed order, one multi-row statement per table where it can. */
  async flush(): Promise<void> {
    const trx = this.trx;
    const now = this.now;

    // Orders: new ones and changed makers in one upsert (market rows are locked: no version needed).
    const changed = byKey(this.orders)
      .map(([, s]) => s)
      .filter((s) => s.isNew || s.dirty);
    await upsertRows(trx, 'orders', ['id'], changed.map((s) => orderToRow(s.rec)), ['filled', 'remaining', 'notional', 'fees', 'status', 'reason', 'cancel_actor_kind', 'cancel_actor_id', 'updated_at'], { versioned: false });
    await insertAll(trx, 'fills', this.fills.map(fillToRow), 150);
    await insertAll(trx, 'account_history', historyRows(changed.filter((s) => s.isNew).map((s) => s.rec), this.fills), 500);

    await this.ledger.flush();

    const positions = byKey(this.positions)
      .filter(([, p]) => (p.orig === null ? p.value.cost !== 0n || p.value.realized !== 0n : p.orig.cost !== p.value.cost || p.orig.realized !== p.value.realized))
      .map(([k, p]) => {
        const [accountId, asset] = k.split('\u0001') as [string, string];
        return { account_id: accountId, asset, cost_basis: p.value.cost.toString(), realized_pnl: p.value.realized.toString(), updated_at: now, version: p.version + 1 };
      });
    await upsertRows(trx, 'positions', ['account_id', 'asset'], positions, ['cost_basis', 'realized_pnl', 'updated_at', 'version'], { versioned: true });

    const usage = byKey(this.usage)
      .filter(([, u]) => u.minute.value !== (u.minute.orig ?? 0n))
      .map(([accountId, u]) => ({ account_id: accountId, minute: this.minute, notional: u.minute.value.toString(), version: u.minute.version + 1 }));
    await upsertRows(trx, 'trading_usage', ['account_id', 'minute'], usage, ['notional', 'version'], { versioned: true });

    const exposure = byKey(this.exposure)
      .filter(([accountId, e]) => e.value !== (e.orig ?? 0n) || this.limitChecked.has(accountId))
      .map(([accountId, e]) => ({ account_id: accountId, open_notional: e.value.toString(), updated_at: now, version: e.version + 1 }));
    await upsertRows(trx, 'trading_exposure', ['account_id'], exposure, ['open_notional', 'updated_at', 'version'], { versioned: true });

    for (const [symbol, m] of byKey(this.markets)) {
      if (m.trades.length > 0) await this.writeCandles(symbol, m.trades);
      const changed = m.seq !== Number(m.row.seq) || m.tradeSeq !== Number(m.row.trade_seq) || m.status !== m.row.status;
      if (!changed) continue;
      await trx
        .updateTable('markets')
        .set({ seq: m.seq, trade_seq: m.tradeSeq, status: m.status, last_price: m.lastPrice === null ? null : m.lastPrice.toString(), last_trade_at: m.lastTradeAt, updated_at: now })
        .where('symbol', '=', symbol)
        .execute();
    }
  }

  /** Folds this batch's trades of one market into its 1m/5m/1h/1d candles. */
  private async writeCandles(market: string, trades: LockedMarket['trades']): Promise<void> {
    const keys = PERIOD_NAMES.map((period) => ({ period, start: periodStart(this.now, period) }));
    const rows = await this.trx
      .selectFrom('candles')
      .selectAll()
      .where('market', '=', market)
      .where((eb) => eb.or(keys.map((k) => eb.and([eb('period', '=', k.period), eb('start', '=', k.start)]))))
      .execute();
    const out = keys.map(({ period, start }) => {
      const row = rows.find((r) => r.period === period && Number(r.start) === start);
      const existing: Candle | undefined = row
        ? { start, open: readMinor(row.open), high: readMinor(row.high), low: readMinor(row.low), close: readMinor(row.close), volume: readMinor(row.volume), quoteVolume: readMinor(row.quote_volume), trades: Number(row.trades) }
        : undefined;
      const c = foldTrades(existing, start, trades)!;
      return { market, period, start, open: c.open.toString(), high: c.high.toString(), low: c.low.toString(), close: c.close.toString(), volume: c.volume.toString(), quote_volume: c.quoteVolume.toString(), trades: c.trades };
    });
    await upsertRows(this.trx, 'candles', ['market', 'period', 'start'], out, ['open', 'high', 'low', 'close', 'volume', 'quote_volume', 'trades'], { versioned: false });
  }
}

export function isOpen(status: OrderRecord['status']): boolean {
  return OPEN_STATUSES.includes(status);
}
