import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import type { Role } from '../../security/rbac/roles.js';
import { StateUnavailableError, type SharedState } from '../../state/port.js';
import type { Store } from '../../store/db.js';
import { USDC, USDC_DECIMALS, type Assets, type Market } from '../assets/index.js';
import { haltsOf, haltStatus, type HaltStatus } from '../halt.js';
import type { SelfTradePrevention } from '../matching/types.js';
import { parseAmount } from '../money.js';
import { isOpen, LIMIT_WINDOW_MINUTES } from './batch.js';
import { accountOrders } from './queries.js';
import { fillFromRow, orderFromRow } from './records.js';
import { OrderSequencer, type CommittedReport, type OrderExecutor, type SequencerCommand, type SequencerReporter } from './sequencer.js';
import { haltRefusal, parseOrder, type BookSnapshot, type CommitHook, type ParsedOrder } from './terms.js';
import { CLIENT_ORDER_ID, type Actor, type Caller, type OrderRecord, type PlaceOrderInput, type PlaceOutcome } from './types.js';

export { checkTerms, parseOrder, termsOf, type BookSnapshot, type CommitHook, type ParsedOrder } from './terms.js';
export { LIMIT_WINDOW_MINUTES };

export interface OrdersDeps {
  store: Store;
  state: SharedState;
  clock: Clock;
  log: Logger;
  assets: Assets;
  /** Rolling-24 h notional per role, USDC decimal strings. */
  dailyLimitUsdc: { trader: string; admin: string };
  batchMax: number;
  /** Most orders one account may have resting in one market. */
  maxOpenOrders: number;
  metrics?: Registry;
  /**
   * Where commands run: by default an OrderSequencer in this thread. The order thread
   * (./thread.ts) passes a factory for its proxy; it is handed the reporter and halt reader that
   * the sequencer would get.
   */
  executor?: (hooks: { report: SequencerReporter; halts: (markets: string[]) => Promise<Map<string, HaltStatus>>; roleLimits: Readonly<Record<string, bigint>>; maxOpenOrders: number }) => OrderExecutor;
}

/**
 * The order service: what the routes call. It parses and checks each command against the market
 * and the halt switch, answers retries and reads (book snapshots) itself, and hands each command
 * to the executor: the sequencer, which group-commits them (see ./sequencer.ts), in this thread or
 * on a thread of its own. Nothing is acknowledged before its transaction has committed.
 */
export class OrdersService {
  private readonly snapshots = new Map<string, BookSnapshot>();
  /** Where commands run: the sequencer in this thread, or the order thread's proxy (./thread.ts). */
  readonly executor: OrderExecutor;
  /** The sequencer when it runs in this thread (commit hooks can be registered on it). */
  private readonly local: OrderSequencer | undefined;
  private readonly roleLimits: Record<string, bigint>;
  private closed = false;
  private readonly m: {
    orders: Counter<'status'>;
    batchSize: Histogram;
    rebuilds: Counter;
    retries: Counter;
  } | null;

  constructor(private readonly deps: OrdersDeps) {
    const parse = (v: string) => {
      const r = parseAmount(v, USDC_DECIMALS, 'daily limit', { positive: false });
      if (!r.ok) throw new Error(r.detail);
      return r.value;
    };
    this.roleLimits = { trader: parse(deps.dailyLimitUsdc.trader), admin: parse(deps.dailyLimitUsdc.admin) };
    this.m = deps.metrics
      ? {
          orders: new Counter({ name: 'moondraft_orders_total', help: 'Orders committed, by final status', labelNames: ['status'] as const, registers: [deps.metrics] }),
          batchSize: new Histogram({ name: 'moondraft_order_batch_size', help: 'Commands per group-committed order transaction', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], registers: [deps.metrics] }),
          rebuilds: new Counter({ name: 'moondraft_book_rebuilds_total', help: 'Order books rebuilt from the store', registers: [deps.metrics] }),
          retries: new Counter({ name: 'moondraft_order_batch_retries_total', help: 'Order transactions retried after a lost race', registers: [deps.metrics] }),
        }
      : null;
    const report: SequencerReporter = {
      committed: (r) => this.committed(r),
      rebuilt: () => this.m?.rebuilds.inc(),
      retried: () => this.m?.retries.inc(),
    };
    // Read by the sequencer once per batch attempt, before its transaction: a halt set after an
    // order passed the check in `place` still stops it if its batch has not begun. A shared-state
    // outage throws (fail closed).
    const halts = (markets: string[]) => haltsOf(deps.state, markets);
    if (deps.executor) {
      this.executor = deps.executor({ report, halts, roleLimits: this.roleLimits, maxOpenOrders: deps.maxOpenOrders });
    } else {
      this.local = new OrderSequencer({ store: deps.store, clock: deps.clock, log: deps.log, assets: deps.assets, roleLimits: this.roleLimits, maxOpenOrders: deps.maxOpenOrders, batchMax: deps.batchMax, halts, report });
      this.executor = this.local;
    }
  }

  /** Whether commands run on the order thread rather than this one. */
  get threaded(): boolean {
    return this.local === undefined;
  }

  /**
   * Registers work to run inside every order transaction before commit (the audit trail). Only
   * with the sequencer in this thread: the order thread registers its own (./thread-worker.ts).
   */
  onCommitting(hook: CommitHook): void {
    if (!this.local) throw new Error('commit hooks cannot be sent to the order thread; it registers its own');
    this.local.onCommitting(hook);
  }

  /** Applies what a committed transaction changed: book snapshots, cached markets, metrics. */
  private committed(r: CommittedReport): void {
    for (const s of r.snapshots) {
      const known = this.snapshots.get(s.market);
      if (!known || known.seq <= s.seq) this.snapshots.set(s.market, s);
    }
    for (const symbol of r.delisted) this.deps.assets.forget(symbol);
    if (this.m) {
      this.m.batchSize.observe(r.commands);
      for (const status of r.placed) this.m.orders.inc({ status });
    }
  }

  /** The daily limit a role gets when no admin override applies (USDC minor units). */
  roleLimit(role: Role): bigint {
    return this.roleLimits[role] ?? 0n;
  }

  /** The open-orders cap per market when no admin override applies (MOONDRAFT_MAX_OPEN_ORDERS). */
  defaultMaxOpenOrders(): number {
    return this.deps.maxOpenOrders;
  }

  /** Rebuilds every active market's book from the store (called at start). */
  async start(): Promise<void> {
    await this.executor.started?.();
    const markets = await this.deps.assets.listMarkets();
    if (markets.length > 0) await this.enqueue({ kind: 'refresh', markets: markets.map((m) => m.symbol) });
  }

  /** Waits for queued commands, then refuses new ones. */
  async close(): Promise<void> {
    this.closed = true;
    await this.executor.close();
  }

  // ---- public operations --------------------------------------------------------------------

  /** Parses an order against its market. Everything refused here is 400 validation_failed. */
  async parse(input: PlaceOrderInput): Promise<Result<{ order: ParsedOrder; market: Market }, 'validation_failed'>> {
    let market = await this.deps.assets.market(input.market);
    let order = market?.status === 'active' ? parseOrder(market, input) : undefined;
    if (market && !order?.ok) {
      // The cached copy may be stale: another process may have relisted the market (with other
      // terms) since. A refusal is decided on the stored row, never on the cache alone.
      market = await this.deps.assets.market(input.market, { fresh: true });
      order = market?.status === 'active' ? parseOrder(market, input) : undefined;
    }
    // Refusals name the field, never echo what was sent.
    if (!market) return fail('validation_failed', 'market: no such market (see GET /api/v1/market/markets)');
    if (market.status !== 'active' || !order) return fail('validation_failed', `Market ${market.symbol} is not trading`);
    return order.ok ? ok({ order: order.value, market }) : order;
  }

  async place(caller: Caller, input: PlaceOrderInput): Promise<Result<PlaceOutcome>> {
    const parsed = await this.parse(input);
    if (!parsed.ok) {
      // A retry returns what was placed, also once the order no longer parses: its market stopped
      // trading (delisted), or was relisted with other terms (tick, lot, minimum) since.
      if (typeof input.clientOrderId === 'string' && CLIENT_ORDER_ID.test(input.clientOrderId)) {
        const earlier = await this.findByClientOrderId(caller.accountId, input.clientOrderId);
        if (earlier) return ok(earlier);
      }
      return parsed;
    }
    const halted = await this.halted(parsed.value.market.symbol, caller, parsed.value.order.clientOrderId);
    if (halted !== undefined) return halted;
    return (await this.enqueue({ kind: 'place', caller, order: parsed.value.order, markets: [parsed.value.market.symbol] })) as Result<PlaceOutcome>;
  }

  /** Sells the account's available balance of `asset` at market (rounded down to the lot). */
  async closePosition(caller: Caller, asset: string, options: { clientOrderId?: string; selfTradePrevention?: SelfTradePrevention } = {}): Promise<Result<PlaceOutcome>> {
    if (asset === USDC) return fail('validation_failed', 'USDC is the quote asset: there is no position to close');
    const symbol = `${asset}-${USDC}`;
    if (options.clientOrderId !== undefined && !CLIENT_ORDER_ID.test(options.clientOrderId)) return fail('validation_failed', 'clientOrderId must be 1–64 letters, digits or _ . : -');
    let market = await this.deps.assets.market(symbol);
    // A cached delisting may be stale (relisted through another process): decide on the stored row.
    if (market && market.status !== 'active') market = await this.deps.assets.market(symbol, { fresh: true });
    if (!market || market.status !== 'active') {
      // A retry returns what was placed, also once its market has stopped trading (as in place).
      if (options.clientOrderId !== undefined && market?.status === 'delisted') {
        const earlier = await this.findByClientOrderId(caller.accountId, options.clientOrderId);
        if (earlier) return ok(earlier);
      }
      return fail('not_found', `No market ${symbol} to close a ${asset} position in`);
    }
    const halted = await this.halted(symbol, caller, options.clientOrderId ?? null);
    if (halted !== undefined) return halted;
    return (await this.enqueue({
      kind: 'close',
      caller,
      asset,
      clientOrderId: options.clientOrderId ?? null,
      selfTradePrevention: options.selfTradePrevention ?? 'cancel_maker',
      markets: [symbol],
    })) as Result<PlaceOutcome>;
  }

  async cancel(caller: Caller, orderId: string): Promise<Result<OrderRecord>> {
    const row = await this.deps.store.db.selectFrom('orders').select(['market', 'account_id', 'status']).where('id', '=', orderId).executeTakeFirst();
    if (!row || row.account_id !== caller.accountId) return fail('not_found', 'No such order');
    if (!isOpen(row.status)) return fail('conflict', `The order is already ${row.status}`);
    return (await this.enqueue({ kind: 'cancel', caller, orderId, markets: [row.market] })) as Result<OrderRecord>;
  }

  /** Cancels the caller's open orders in one market, or in every market when `market` is undefined. */
  async cancelAll(caller: Caller, market?: string): Promise<Result<OrderRecord[]>> {
    let markets: string[];
    if (market !== undefined) {
      const m = await this.deps.assets.market(market);
      if (!m) return fail('validation_failed', 'market: no such market');
      markets = [m.symbol];
    } else {
      const rows = await accountOrders(this.deps.store, caller.accountId).select('o.market').distinct().where('o.status', 'in', ['open', 'partially_filled']).execute();
      markets = rows.map((r) => r.market);
    }
    if (markets.length === 0) return ok([]);
    return (await this.enqueue({ kind: 'cancelAll', caller, markets })) as Result<OrderRecord[]>;
  }

  /** Delists a market: cancels every resting order (releasing holds) and stops trading in it. */
  async delist(actor: Actor, market: string): Promise<Result<{ market: string; cancelled: number }>> {
    const m = await this.deps.assets.market(market, { fresh: true });
    if (!m) return fail('not_found', 'No such market');
    if (m.status !== 'active') return fail('conflict', `Market ${m.symbol} is already delisted`);
    return (await this.enqueue({ kind: 'delist', actor, markets: [m.symbol] })) as Result<{ market: string; cancelled: number }>;
  }

  /**
   * The committed book of a market, as of the last commit this process saw. When another
   * process has moved the market on since (scale-out), the book is rebuilt first.
   */
  async snapshot(market: string): Promise<BookSnapshot | undefined> {
    const row = await this.deps.store.db.selectFrom('markets').select(['seq', 'status']).where('symbol', '=', market).executeTakeFirst();
    if (!row) return undefined;
    const seq = Number(row.seq);
    let snap = this.snapshots.get(market);
    if (!snap || snap.seq < seq) {
      const refreshed = await this.enqueue({ kind: 'refresh', markets: [market] });
      // The order thread is restarting (or the server closing): no book to answer from, rather
      // than an old or an empty one (503).
      if (!refreshed.ok) throw new StateUnavailableError(`order book of ${market}: ${refreshed.detail}`);
      snap = this.snapshots.get(market);
    }
    return snap ?? { market, seq, bids: [], asks: [], at: this.deps.clock.now() };
  }

  /**
   * Builds the book of a market just listed, so that it serves at once. Best effort: the listing
   * has committed whatever happens here, and the first order or depth read builds the book anyway
   * (while the order thread restarts, for one).
   */
  async warm(market: string): Promise<void> {
    try {
      await this.snapshot(market);
    } catch (err) {
      this.deps.log.warn({ err, market }, 'could not build a new market\'s book yet; its first use will');
    }
  }

  private async findByClientOrderId(accountId: string, clientOrderId: string): Promise<PlaceOutcome | undefined> {
    const row = await this.deps.store.db.selectFrom('orders').selectAll().where('account_id', '=', accountId).where('client_order_id', '=', clientOrderId).executeTakeFirst();
    if (!row) return undefined;
    const fills = await this.deps.store.db.selectFrom('fills').selectAll().where('taker_order_id', '=', row.id).orderBy('trade_seq').execute();
    return { order: orderFromRow(row), fills: fills.map(fillFromRow), replayed: true };
  }

  /**
   * Undefined while trading in the market goes on: the sequencer then finds a retried order's
   * original inside its transaction. While it is halted: the original of a retried placement (a
   * retry still returns what was placed), else `trading_halted`.
   */
  private async halted(market: string, caller: Caller, clientOrderId: string | null): Promise<Result<PlaceOutcome, 'trading_halted'> | undefined> {
    const h = await haltStatus(this.deps.state, market);
    if (!h.halted) return undefined;
    if (clientOrderId !== null) {
      const earlier = await this.findByClientOrderId(caller.accountId, clientOrderId);
      if (earlier) return ok(earlier);
    }
    return haltRefusal(market, h);
  }

  private enqueue(command: SequencerCommand): Promise<Result<unknown>> {
    if (this.closed) return Promise.resolve(fail('service_unavailable', 'The server is shutting down'));
    return this.executor.submit(command);
  }
}
