import type { Transaction } from 'kysely';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { fail, ok, type ErrorCode, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import type { Role } from '../../security/rbac/roles.js';
import type { SharedState } from '../../state/port.js';
import type { Store } from '../../store/db.js';
import type { Database } from '../../store/schema.js';
import { notionalOf, USDC, USDC_DECIMALS, type Assets, type Market } from '../assets/index.js';
import { haltFrom, haltKeys, haltStatus, type HaltStatus } from '../halt.js';
import { SYSTEM_OWNERS } from '../ledger/owners.js';
import { OrderBook } from '../matching/book.js';
import type { BookTerms, DepthLevel, IncomingOrder, SelfTradePrevention, TimeInForce } from '../matching/types.js';
import { formatAmount, parseAmount, pow10 } from '../money.js';
import { applyBuy, applySell } from '../portfolio/average-cost.js';
import { backoff, isRetryable } from '../retry.js';
import { Batch, isOpen, LIMIT_WINDOW_MINUTES } from './batch.js';
import { accountOrders } from './queries.js';
import { FILL_ID_PREFIX, fillFromRow, historyKey, orderFromRow } from './records.js';
import { committedNotional, fillLines, restingHold, takerRequirement } from './settlement.js';
import { CLIENT_ORDER_ID, SYSTEM_STP, type Actor, type Caller, type FillRecord, type OrderRecord, type PlaceOrderInput, type PlaceOutcome, type TradingEvent } from './types.js';

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

export interface OrdersDeps {
  store: Store;
  state: SharedState;
  clock: Clock;
  log: Logger;
  assets: Assets;
  /** Rolling-24 h notional per role, USDC decimal strings. */
  dailyLimitUsdc: { trader: string; admin: string };
  batchMax: number;
  metrics?: Registry;
}

type CommandBody =
  | { kind: 'place'; caller: Caller; order: ParsedOrder }
  | { kind: 'close'; caller: Caller; asset: string; clientOrderId: string | null; selfTradePrevention: SelfTradePrevention }
  | { kind: 'cancel'; caller: Caller; orderId: string }
  | { kind: 'cancelAll'; caller: Caller }
  | { kind: 'delist'; actor: Actor }
  | { kind: 'refresh' };

type Command = CommandBody & {
  markets: string[];
  resolve: (r: Result<unknown>) => void;
  reject: (err: unknown) => void;
};

/** A market's book in memory, with the records of its resting orders (so makers need no read). */
interface LiveBook {
  book: OrderBook;
  seq: number;
  market: Market;
  records: Map<string, OrderRecord>;
}

const SNAPSHOT_LEVELS = 100;
const MAX_ATTEMPTS = 12;

export function termsOf(market: Market): BookTerms {
  return { baseScale: pow10(market.baseDecimals), makerFeeBps: BigInt(market.makerFeeBps), takerFeeBps: BigInt(market.takerFeeBps) };
}

/**
 * The order service: validates, checks the halt switch, then hands each order to a per-process
 * sequencer that group-commits: the orders that arrive while one transaction commits go together
 * into the next. Inside that one transaction, per order: market row locked → book checked against
 * the market's seq (rebuilt from the store if another process moved it) → idempotency → match
 * plan → funds → daily limit → book applied → order, fills, ledger entries, positions, usage,
 * candles written → commit hooks (audit) → commit. Only then is any order acknowledged. If the
 * transaction fails after books were changed in memory, those books are dropped and rebuilt from
 * the store: memory is never ahead of the database.
 */
export class OrdersService {
  private readonly books = new Map<string, LiveBook>();
  private readonly snapshots = new Map<string, BookSnapshot>();
  private readonly queue: Command[] = [];
  private draining: Promise<void> | null = null;
  private readonly hooks: CommitHook[] = [];
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
  }

  /** Registers work to run inside every order transaction before commit (the audit trail). */
  onCommitting(hook: CommitHook): void {
    this.hooks.push(hook);
  }

  /** The daily limit a role gets when no admin override applies (USDC minor units). */
  roleLimit(role: Role): bigint {
    return this.roleLimits[role] ?? 0n;
  }

  /** Rebuilds every active market's book from the store (called at start). */
  async start(): Promise<void> {
    const markets = await this.deps.assets.listMarkets();
    if (markets.length > 0) await this.enqueue({ kind: 'refresh', markets: markets.map((m) => m.symbol) });
  }

  /** Waits for queued commands, then refuses new ones. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.draining) await this.draining;
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
      await this.enqueue({ kind: 'refresh', markets: [market] });
      snap = this.snapshots.get(market);
    }
    return snap ?? { market, seq, bids: [], asks: [], at: this.deps.clock.now() };
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

  /**
   * The halts in force for the markets that the batch's placements and closes trade in, read once
   * per batch attempt before its transaction: a halt set after an order passed the check in
   * `place` still stops it if its batch has not begun. A shared-state outage throws (fail closed).
   */
  private async haltsFor(commands: readonly Command[]): Promise<Map<string, HaltStatus>> {
    const markets = [...new Set(commands.flatMap((c) => (c.kind === 'place' || c.kind === 'close' ? c.markets : [])))];
    const out = new Map<string, HaltStatus>();
    if (markets.length === 0) return out;
    const [global, ...perMarket] = await this.deps.state.getMany([haltKeys.global, ...markets.map((m) => haltKeys.market(m))]);
    markets.forEach((m, i) => out.set(m, haltFrom(global ?? null, perMarket[i] ?? null)));
    return out;
  }

  // ---- the sequencer --------------------------------------------------------------------------

  private enqueue(body: CommandBody & { markets: string[] }): Promise<Result<unknown>> {
    if (this.closed) return Promise.resolve(fail('service_unavailable', 'The server is shutting down'));
    return new Promise((resolve, reject) => {
      this.queue.push({ ...body, resolve, reject } as Command);
      if (!this.draining) {
        this.draining = this.drain().finally(() => {
          this.draining = null;
        });
      }
    });
  }

  private async drain(): Promise<void> {
    // Let the requests that arrived in this tick join the first batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.deps.batchMax);
      await this.runBatch(batch);
    }
  }

  private async runBatch(commands: Command[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const touched = new Set<string>();
      let committed: { results: Result<unknown>[]; batch: Batch };
      let committing = false;
      let halts: Map<string, HaltStatus>;
      try {
        halts = await this.haltsFor(commands);
      } catch (err) {
        // Shared state is down: placements fail closed (as in `place`); cancels go on without it.
        const rest: Command[] = commands.filter((c) => c.kind !== 'place' && c.kind !== 'close');
        for (const c of commands) if (!rest.includes(c)) c.reject(err);
        if (rest.length > 0) await this.runBatch(rest);
        return;
      }
      try {
        committed = await this.deps.store.transaction(async (trx) => {
          const batch = new Batch(trx, this.deps.clock.now(), this.deps.store.dialect, halts);
          await batch.lockMarkets(commands.flatMap((c) => c.markets));
          for (const [symbol] of batch.markets) await this.ensureBook(batch, symbol, touched);
          const takers = commands.flatMap((c) => (c.kind === 'place' || c.kind === 'close' ? [c.caller.accountId] : []));
          await batch.loadAccounts(takers);
          await batch.loadClientOrderIds(
            commands.flatMap((c) => (c.kind === 'place' && c.order.clientOrderId !== null ? [{ accountId: c.caller.accountId, clientOrderId: c.order.clientOrderId }] : c.kind === 'close' && c.clientOrderId !== null ? [{ accountId: c.caller.accountId, clientOrderId: c.clientOrderId }] : [])),
          );
          const results: Result<unknown>[] = [];
          for (const c of commands) results.push(await this.execute(batch, c, touched));
          await batch.flush();
          for (const hook of this.hooks) await hook(trx, batch.events);
          committing = true;
          return { results, batch };
        });
      } catch (err) {
        // Memory must never be ahead of the store: forget every book this attempt touched.
        for (const symbol of touched) {
          this.books.delete(symbol);
        }
        if (committing) {
          // COMMIT itself failed: whether it took effect is unknown, so nothing is run again (a
          // client retrying with its clientOrderId gets the original if it did).
          this.deps.log.error({ err, commands: commands.length }, 'order transaction failed at commit; outcome unknown');
          for (const c of commands) c.reject(err);
          return;
        }
        if (isRetryable(err) && attempt < MAX_ATTEMPTS) {
          this.m?.retries.inc();
          await backoff(attempt);
          continue;
        }
        if (commands.length > 1) {
          // Isolate the command that cannot commit; the others go through on their own.
          this.deps.log.warn({ err, commands: commands.length }, 'order batch failed; retrying its commands one by one');
          for (const c of commands) await this.runBatch([c]);
          return;
        }
        this.deps.log.error({ err, kind: commands[0]!.kind }, 'order command failed');
        commands[0]!.reject(err);
        return;
      }
      // Committed: from here nothing may run the commands again, whatever happens.
      try {
        this.afterCommit(committed.batch, touched);
        this.m?.batchSize.observe(commands.length);
      } catch (err) {
        this.deps.log.error({ err }, 'after-commit bookkeeping failed; rebuilding the books it touched');
        for (const symbol of touched) this.books.delete(symbol);
      }
      commands.forEach((c, i) => c.resolve(committed.results[i]!));
      return;
    }
  }

  private afterCommit(batch: Batch, touched: Set<string>): void {
    for (const [symbol, m] of batch.markets) {
      const live = this.books.get(symbol);
      if (m.status === 'delisted') {
        this.books.delete(symbol);
        this.snapshots.set(symbol, { market: symbol, seq: m.seq, bids: [], asks: [], at: batch.now });
        this.deps.assets.forget(symbol);
        continue;
      }
      if (!live) continue;
      live.seq = m.seq;
      if (touched.has(symbol) || !this.snapshots.has(symbol) || this.snapshots.get(symbol)!.seq !== m.seq) {
        const depth = live.book.depth(SNAPSHOT_LEVELS);
        this.snapshots.set(symbol, { market: symbol, seq: m.seq, bids: depth.bids, asks: depth.asks, at: batch.now });
      }
    }
    if (this.m) {
      for (const e of batch.events) if (e.type === 'order.placed') this.m.orders.inc({ status: e.order.status });
    }
  }

  /** Makes the in-memory book match the locked market row, rebuilding it from open orders if not. */
  private async ensureBook(batch: Batch, symbol: string, touched: Set<string>): Promise<void> {
    const m = batch.markets.get(symbol)!;
    const live = this.books.get(symbol);
    if (live && live.seq === m.seq) return;
    const market = await this.deps.assets.fromRow(m.row, batch.trx);
    const book = new OrderBook(termsOf(market));
    const rows = await batch.trx.selectFrom('orders').selectAll().where('market', '=', symbol).where('status', 'in', ['open', 'partially_filled']).orderBy('seq').orderBy('id').execute();
    const records = new Map<string, OrderRecord>();
    for (const r of rows) {
      const rec = orderFromRow(r);
      records.set(rec.id, rec);
      book.insert({ id: rec.id, accountId: rec.accountId, side: rec.side, price: rec.price!, remaining: rec.remaining, seq: rec.seq });
    }
    this.books.set(symbol, { book, seq: m.seq, market, records });
    touched.add(symbol);
    this.m?.rebuilds.inc();
  }

  private async execute(batch: Batch, c: Command, touched: Set<string>): Promise<Result<unknown>> {
    switch (c.kind) {
      case 'place':
        return this.execPlace(batch, c.caller, c.order, touched);
      case 'close':
        return this.execClose(batch, c, touched);
      case 'cancel':
        return this.execCancel(batch, c.caller, c.orderId, c.markets[0]!, touched);
      case 'cancelAll':
        return this.execCancelAll(batch, c.caller, c.markets, touched);
      case 'delist':
        return this.execDelist(batch, c.actor, c.markets[0]!, touched);
      case 'refresh':
        return ok(undefined);
    }
  }

  private liveMarket(batch: Batch, symbol: string): Result<{ live: LiveBook; locked: NonNullable<ReturnType<Batch['markets']['get']>> }, 'validation_failed'> {
    const locked = batch.markets.get(symbol);
    const live = this.books.get(symbol);
    if (!locked || !live || locked.status !== 'active') return fail('validation_failed', `Market ${symbol} is not trading`);
    return ok({ live, locked });
  }

  private async execPlace(batch: Batch, caller: Caller, o: ParsedOrder, touched: Set<string>): Promise<Result<PlaceOutcome, ErrorCode>> {
    // A retry returns the original first, whatever became of its market since.
    if (o.clientOrderId !== null) {
      const existing = batch.clientOrder(caller.accountId, o.clientOrderId);
      if (existing) return ok(await this.replay(batch, existing));
    }
    const halt = batch.halts.get(o.market);
    if (halt?.halted) return haltRefusal(o.market, halt);
    const lm = this.liveMarket(batch, o.market);
    if (!lm.ok) return lm;
    const { live, locked } = lm.value;
    const market = live.market;
    // Terms may have changed since parsing (relisting): check against the locked row.
    const terms = checkTerms(market, o);
    if (!terms.ok) return terms;

    const now = batch.now;
    const seq = locked.seq + 1;
    const id = newId('ord', now);
    const book = live.book;
    const bookTerms = book.terms;
    const result = book.plan({ id, accountId: caller.accountId, side: o.side, type: o.type, price: o.price, quantity: o.quantity, timeInForce: o.timeInForce, selfTradePrevention: o.selfTradePrevention, seq });

    // Funds: what the fills pay and the remainder holds must be available now.
    const need = takerRequirement(result, bookTerms);
    const payAsset = o.side === 'buy' ? market.quote : market.base;
    if (need.amount > 0n) {
      const balance = await batch.ledger.balance(caller.accountId, payAsset);
      if (balance.available < need.amount) {
        const decimals = o.side === 'buy' ? market.quoteDecimals : market.baseDecimals;
        return fail('insufficient_funds', `This order needs ${formatAmount(need.amount, decimals)} ${payAsset} available; the balance is ${formatAmount(balance.available, decimals)}`, {
          asset: payAsset,
          required: formatAmount(need.amount, decimals),
          available: formatAmount(balance.available, decimals),
        });
      }
    }

    // Daily limit: traded in the last 24 h + resting + this order's notional.
    const committed = committedNotional(result, bookTerms);
    if (committed > 0n) {
      const limit = batch.limitOverride(caller.accountId) ?? this.roleLimit(caller.role);
      const used = batch.usageOf(caller.accountId);
      if (used + committed > limit) {
        const left = limit > used ? limit - used : 0n;
        return fail('daily_limit_exceeded', `This order's notional ${formatAmount(committed, USDC_DECIMALS)} USDC exceeds what is left of the daily limit (${formatAmount(left, USDC_DECIMALS)} of ${formatAmount(limit, USDC_DECIMALS)} USDC)`, {
          limit: formatAmount(limit, USDC_DECIMALS),
          remaining: formatAmount(left, USDC_DECIMALS),
        });
      }
      batch.noteLimitChecked(caller.accountId);
    }

    // Accepted: from here on every step must succeed, or the whole transaction fails.
    book.apply(result);
    touched.add(o.market);
    locked.seq = seq;

    const rec: OrderRecord = {
      id,
      accountId: caller.accountId,
      market: o.market,
      side: o.side,
      type: o.type,
      timeInForce: o.timeInForce,
      selfTradePrevention: o.selfTradePrevention,
      price: o.type === 'limit' ? o.price : null,
      quantity: o.quantity,
      filled: result.filled,
      remaining: result.rests ? result.remaining : 0n,
      notional: result.notional,
      fees: result.takerFees,
      status: result.status,
      reason: result.reason,
      clientOrderId: o.clientOrderId,
      seq,
      actor: caller.actor,
      cancelActor: result.status === 'cancelled' ? SYSTEM_STP : null,
      createdAt: now,
      updatedAt: now,
    };
    batch.addOrder(rec);
    batch.events.push({ type: 'order.placed', at: now, order: { ...rec }, actor: caller.actor });

    // One read for every hold this order will release (self-trade cancels, makers it empties).
    await batch.ledger.loadHolds([...result.selfTradeCancels.map((c) => c.id), ...result.fills.filter((f) => f.makerRemaining === 0n).map((f) => f.makerOrderId)]);
    for (const c of result.selfTradeCancels) await this.closeResting(batch, live, c.id, 'self_trade', SYSTEM_STP);

    const fills: FillRecord[] = [];
    if (result.fills.length > 0) {
      await batch.loadAccounts(result.fills.map((f) => f.makerAccountId));
      const assets = { base: market.base, quote: market.quote, feeOwner: SYSTEM_OWNERS.fees };
      // Fill ids derive from the taker order's id (one random draw per order, not per fill).
      const fillBase = `${FILL_ID_PREFIX}${historyKey(id)}`;
      for (const [k, f] of result.fills.entries()) {
        const fill: FillRecord = {
          id: `${fillBase}.${k.toString(36).padStart(3, '0')}`,
          market: o.market,
          tradeSeq: ++locked.tradeSeq,
          price: f.price,
          quantity: f.quantity,
          notional: f.notional,
          takerSide: f.takerSide,
          takerOrderId: id,
          makerOrderId: f.makerOrderId,
          takerAccountId: caller.accountId,
          makerAccountId: f.makerAccountId,
          takerFee: f.takerFee,
          makerFee: f.makerFee,
          takerActor: caller.actor,
          createdAt: now,
        };
        const buyer = f.takerSide === 'buy' ? caller.accountId : f.makerAccountId;
        const seller = f.takerSide === 'buy' ? f.makerAccountId : caller.accountId;
        const sellerHolding = await batch.ledger.balance(seller, market.base);
        const posted = await batch.ledger.post('trade', fill.id, fillLines(f, assets));
        if (!posted.ok) throw new Error(`settlement of ${fill.id} refused: ${posted.detail}`);
        const buyerFee = f.takerSide === 'buy' ? f.takerFee : f.makerFee;
        const sellerFee = f.takerSide === 'buy' ? f.makerFee : f.takerFee;
        applyBuy(batch.position(buyer, market.base), f.notional + buyerFee);
        applySell(batch.position(seller, market.base), f.quantity, f.notional - sellerFee, sellerHolding.available + sellerHolding.held);

        const maker = live.records.get(f.makerOrderId);
        if (!maker) throw new Error(`maker order ${f.makerOrderId} is on the book without its record`);
        batch.adoptOrder(maker);
        maker.filled += f.quantity;
        maker.remaining = f.makerRemaining;
        maker.notional += f.notional;
        maker.fees += f.makerFee;
        maker.status = f.makerRemaining === 0n ? 'filled' : 'partially_filled';
        batch.touchOrder(maker.id);
        if (f.makerRemaining === 0n) {
          await batch.ledger.releaseHold(maker.id);
          live.records.delete(maker.id);
        }

        batch.addTraded(caller.accountId, f.notional);
        batch.addTraded(f.makerAccountId, f.notional);
        batch.addExposure(f.makerAccountId, -f.notional);
        batch.addFill(fill, { market: o.market });
        batch.events.push({ type: 'fill', at: now, fill });
        fills.push(fill);
      }
    }

    if (result.rests) {
      const amount = restingHold(o.side, o.price!, result.remaining, bookTerms);
      const held = await batch.ledger.openHold({ id, owner: caller.accountId, asset: payAsset, amount, kind: 'order', fresh: true });
      if (!held.ok) throw new Error(`hold for ${id} refused after the funds check: ${held.detail}`);
      batch.addExposure(caller.accountId, notionalOf(market, o.price!, result.remaining));
      live.records.set(id, rec);
    }
    // A snapshot: later commands of this batch may still fill the resting remainder.
    return ok({ order: { ...rec }, fills, replayed: false });
  }

  private async execClose(batch: Batch, c: Extract<Command, { kind: 'close' }>, touched: Set<string>): Promise<Result<unknown>> {
    const symbol = c.markets[0]!;
    if (c.clientOrderId !== null) {
      const existing = batch.clientOrder(c.caller.accountId, c.clientOrderId);
      if (existing) return ok(await this.replay(batch, existing));
    }
    const halt = batch.halts.get(symbol);
    if (halt?.halted) return haltRefusal(symbol, halt);
    const lm = this.liveMarket(batch, symbol);
    if (!lm.ok) return lm;
    const market = lm.value.live.market;
    const balance = await batch.ledger.balance(c.caller.accountId, c.asset);
    const quantity = balance.available - (balance.available % market.lotSize);
    if (quantity <= 0n) return fail('conflict', `Nothing to close: the available ${c.asset} balance is below one lot (${formatAmount(market.lotSize, market.baseDecimals)})`);
    return this.execPlace(
      batch,
      c.caller,
      { market: symbol, side: 'sell', type: 'market', price: null, quantity, timeInForce: 'IOC', selfTradePrevention: c.selfTradePrevention, clientOrderId: c.clientOrderId },
      touched,
    );
  }

  private async execCancel(batch: Batch, caller: Caller, orderId: string, market: string, touched: Set<string>): Promise<Result<OrderRecord, ErrorCode>> {
    const live = this.books.get(market);
    const locked = batch.markets.get(market);
    if (!live || !locked) throw new Error(`book of ${market} not loaded`);
    const rec = live.records.get(orderId);
    if (!rec) {
      // Not resting (any more): say why.
      await batch.loadOrders([orderId]);
      const stored = batch.order(orderId);
      if (!stored || stored.accountId !== caller.accountId) return fail('not_found', 'No such order');
      if (isOpen(stored.status)) throw new Error(`open order ${orderId} is not on the rebuilt book of ${market}`);
      return fail('conflict', `The order is already ${stored.status}`);
    }
    if (rec.accountId !== caller.accountId) return fail('not_found', 'No such order');
    live.book.cancel(orderId);
    touched.add(market);
    locked.seq += 1;
    await batch.loadAccounts([rec.accountId]);
    await this.closeResting(batch, live, orderId, 'user', caller.actor);
    return ok({ ...rec });
  }

  private async execCancelAll(batch: Batch, caller: Caller, markets: string[], touched: Set<string>): Promise<Result<OrderRecord[]>> {
    const out: OrderRecord[] = [];
    await batch.loadAccounts([caller.accountId]);
    for (const symbol of markets) {
      const live = this.books.get(symbol);
      const locked = batch.markets.get(symbol);
      if (!live || !locked) continue;
      const mine = live.book.ordersOf(caller.accountId);
      if (mine.length === 0) continue;
      for (const o of mine) {
        live.book.cancel(o.id);
        touched.add(symbol);
        out.push(await this.closeResting(batch, live, o.id, 'user', caller.actor));
      }
      locked.seq += 1;
    }
    return ok(out);
  }

  private async execDelist(batch: Batch, actor: Actor, symbol: string, touched: Set<string>): Promise<Result<unknown>> {
    const live = this.books.get(symbol);
    const locked = batch.markets.get(symbol);
    if (!live || !locked) return fail('not_found', `No market ${symbol}`);
    if (locked.status !== 'active') return fail('conflict', `Market ${symbol} is already delisted`);
    const resting = live.book.cancelAll();
    touched.add(symbol);
    await batch.loadAccounts(resting.map((o) => o.accountId));
    for (const o of resting) await this.closeResting(batch, live, o.id, 'delisted', actor);
    locked.seq += 1;
    locked.status = 'delisted';
    batch.events.push({ type: 'market.delisted', at: batch.now, market: symbol, actor, cancelled: resting.length });
    return ok({ market: symbol, cancelled: resting.length });
  }

  /** Closes a resting order already removed from the book: releases its hold and exposure. */
  private async closeResting(batch: Batch, live: LiveBook, orderId: string, reason: 'user' | 'self_trade' | 'delisted', actor: Actor): Promise<OrderRecord> {
    const rec = live.records.get(orderId);
    if (!rec) throw new Error(`resting order ${orderId} has no record`);
    batch.adoptOrder(rec);
    await batch.ledger.releaseHold(orderId);
    if (rec.price !== null) batch.addExposure(rec.accountId, -notionalOf(live.market, rec.price, rec.remaining));
    rec.status = 'cancelled';
    rec.reason = reason;
    rec.remaining = 0n;
    rec.cancelActor = actor;
    batch.touchOrder(orderId);
    live.records.delete(orderId);
    const snapshot = { ...rec };
    batch.events.push({ type: 'order.cancelled', at: batch.now, order: snapshot, actor, reason });
    return snapshot;
  }

  private async replay(batch: Batch, existing: OrderRecord): Promise<PlaceOutcome> {
    const stored = await batch.trx.selectFrom('fills').selectAll().where('taker_order_id', '=', existing.id).orderBy('trade_seq').execute();
    // A copy: the record may be a resting order's, which later commands of the batch change.
    return { order: { ...existing }, fills: [...stored.map(fillFromRow), ...batch.newFillsOf(existing.id)], replayed: true };
  }
}

/** Tick, lot and minimum-notional checks of a parsed order against a market's terms. */
function checkTerms(market: Market, o: ParsedOrder): Result<void, 'validation_failed'> {
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

export { LIMIT_WINDOW_MINUTES };

/** 503 `trading_halted` for `market`, naming the halt's scope and reason. */
function haltRefusal(market: string, h: HaltStatus): Result<never, 'trading_halted'> {
  const why = h.record?.reason ? `: ${h.record.reason}` : '';
  return fail('trading_halted', h.scope === 'global' ? `Trading is halted${why}` : `Trading in ${market} is halted${why}`, { scope: h.scope });
}
