import type { Logger } from 'pino';
import { fail, ok, type ErrorCode, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import { newId, sortableCounter } from '../../lib/ids.js';
import type { Store } from '../../store/db.js';
import { notionalOf, USDC_DECIMALS, type Assets, type Market } from '../assets/index.js';
import type { HaltStatus } from '../halt.js';
import { SYSTEM_OWNERS } from '../ledger/owners.js';
import { OrderBook } from '../matching/book.js';
import type { SelfTradePrevention } from '../matching/types.js';
import { formatAmount, MAX_MINOR } from '../money.js';
import { applyBuy, applySell } from '../portfolio/average-cost.js';
import { backoff, isRetryable } from '../retry.js';
import { Batch, isOpen } from './batch.js';
import { FILL_ID_PREFIX, fillFromRow, historyKey, orderFromRow } from './records.js';
import { committedNotional, fillLines, restingHold, takerRequirement } from './settlement.js';
import { checkTerms, haltRefusal, minimumNotionalRefusal, termsOf, type BookSnapshot, type CommitHook, type ParsedOrder } from './terms.js';
import { SYSTEM_STP, type Actor, type Caller, type FillRecord, type OrderRecord, type OrderStatus, type PlaceOutcome } from './types.js';

/** A command for the sequencer, with the markets whose rows its transaction locks. */
export type SequencerCommand = { markets: string[] } & (
  | { kind: 'place'; caller: Caller; order: ParsedOrder }
  | { kind: 'close'; caller: Caller; asset: string; clientOrderId: string | null; selfTradePrevention: SelfTradePrevention }
  | { kind: 'cancel'; caller: Caller; orderId: string }
  | { kind: 'cancelAll'; caller: Caller }
  | { kind: 'delist'; actor: Actor }
  | { kind: 'refresh' }
);

type Command = SequencerCommand & {
  resolve: (r: Result<unknown>) => void;
  reject: (err: unknown) => void;
};

/** What one committed transaction changed, for whoever serves reads and metrics. */
export interface CommittedReport {
  /** Commands the transaction carried. */
  commands: number;
  /** The final status of every order it placed. */
  placed: OrderStatus[];
  /** The new committed book of every market it moved (and of markets seen at a newer seq). */
  snapshots: BookSnapshot[];
  /** Markets it delisted. */
  delisted: string[];
}

/** Told as the sequencer works: `committed` runs before the batch's commands resolve. */
export interface SequencerReporter {
  committed(report: CommittedReport): void;
  rebuilt(): void;
  retried(): void;
}

/**
 * Where order commands are executed: the sequencer itself (in this thread), or a proxy for a
 * sequencer on its own thread (./thread.ts). Both resolve a command only once it has committed.
 */
export interface OrderExecutor {
  submit(command: SequencerCommand): Promise<Result<unknown>>;
  /** Resolves once commands can run (the order thread has opened its store); rejects if they never can. */
  started?(): Promise<void>;
  /** Waits for queued commands, then refuses new ones. */
  close(): Promise<void>;
}

export interface SequencerDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  assets: Assets;
  /** Daily limit per role when no admin override applies (USDC minor units). */
  roleLimits: Readonly<Record<string, bigint>>;
  /** Most orders one account may have resting in one market's book. */
  maxOpenOrders: number;
  batchMax: number;
  /**
   * The halts in force for these markets, read once per batch attempt before its transaction. A
   * shared-state outage rejects: the batch's placements then fail closed, its cancels go on.
   */
  halts(markets: string[]): Promise<Map<string, HaltStatus>>;
  report?: SequencerReporter;
  /** Awaited before each transaction begins (the order thread lets a waiting server thread in first). */
  beforeTransaction?: () => Promise<void>;
}

/** A market's book in memory, with the records of its resting orders (so makers need no read). */
interface LiveBook {
  book: OrderBook;
  seq: number;
  market: Market;
  records: Map<string, OrderRecord>;
}

const SNAPSHOT_LEVELS = 100;
const MAX_ATTEMPTS = 12;

/**
 * The sequencer: group-commits order commands. The commands that arrive while one transaction
 * commits go together into the next. Inside that one transaction, per command: market row locked
 * → book checked against the market's seq (rebuilt from the store if another process moved it)
 * → idempotency → match plan → open-orders cap → funds → daily limit → book applied → order, fills, ledger entries,
 * positions, usage, candles written → commit hooks (audit) → commit. Only then is any command
 * resolved. If the transaction fails after books were changed in memory, those books are dropped
 * and rebuilt from the store: memory is never ahead of the database.
 *
 * It runs in the server's thread, or on a thread of its own (./thread.ts): it owns the books and
 * nothing else, so it only needs a store connection, the markets and a way to read halts.
 */
export class OrderSequencer implements OrderExecutor {
  private readonly books = new Map<string, LiveBook>();
  /** The seq of the last snapshot reported per market. */
  private readonly reported = new Map<string, number>();
  private readonly queue: Command[] = [];
  private draining: Promise<void> | null = null;
  private readonly hooks: CommitHook[] = [];
  private closed = false;

  constructor(private readonly deps: SequencerDeps) {}

  /** Registers work to run inside every order transaction before commit (the audit trail). */
  onCommitting(hook: CommitHook): void {
    this.hooks.push(hook);
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.draining) await this.draining;
  }

  /** Queues a command; resolves once the transaction that carried it has committed (or refused it). */
  submit(body: SequencerCommand): Promise<Result<unknown>> {
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
      // The wait for the server thread comes first: a halt it sets meanwhile stops this batch.
      if (this.deps.beforeTransaction) await this.deps.beforeTransaction();
      try {
        const markets = [...new Set(commands.flatMap((c) => (c.kind === 'place' || c.kind === 'close' ? c.markets : [])))];
        halts = markets.length === 0 ? new Map() : await this.deps.halts(markets);
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
          this.deps.report?.retried();
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
        this.afterCommit(committed.batch, touched, commands.length);
      } catch (err) {
        this.deps.log.error({ err }, 'after-commit bookkeeping failed; rebuilding the books it touched');
        for (const symbol of touched) this.books.delete(symbol);
      }
      commands.forEach((c, i) => c.resolve(committed.results[i]!));
      return;
    }
  }

  private afterCommit(batch: Batch, touched: Set<string>, commands: number): void {
    const snapshots: BookSnapshot[] = [];
    const delisted: string[] = [];
    for (const [symbol, m] of batch.markets) {
      const live = this.books.get(symbol);
      if (m.status === 'delisted') {
        this.books.delete(symbol);
        this.reported.set(symbol, m.seq);
        snapshots.push({ market: symbol, seq: m.seq, bids: [], asks: [], at: batch.now });
        this.deps.assets.forget(symbol);
        delisted.push(symbol);
        continue;
      }
      if (!live) continue;
      live.seq = m.seq;
      if (touched.has(symbol) || this.reported.get(symbol) !== m.seq) {
        const depth = live.book.depth(SNAPSHOT_LEVELS);
        this.reported.set(symbol, m.seq);
        snapshots.push({ market: symbol, seq: m.seq, bids: depth.bids, asks: depth.asks, at: batch.now });
      }
    }
    const placed: OrderStatus[] = [];
    for (const e of batch.events) if (e.type === 'order.placed') placed.push(e.order.status);
    this.deps.report?.committed({ commands, placed, snapshots, delisted });
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
    this.deps.report?.rebuilt();
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

    // A market order has no price to check before matching: what it would trade is its notional.
    // Below the market's minimum, it is refused as a limit order would be (nothing happens, not
    // even self-trade cancels). One that would trade nothing (an empty book) is recorded as
    // expired, as before: it moves no money.
    const minimum = minimumNotionalRefusal(market, result);
    if (minimum) return minimum;

    // Open orders: an order that would rest is refused once the account already rests the most
    // allowed in this market (every one is held in memory and walked by cancel-all). Its own
    // orders that self-trade prevention cancels in this plan rest no more once it is accepted.
    // An order that never rests (filled in full, IOC, FOK, market) is never refused here. The cap
    // is the account's admin override if it has one (read by this batch), else the configured one;
    // an override below what already rests leaves those orders resting and refuses new ones.
    if (result.rests) {
      const max = batch.openOrdersOverride(caller.accountId) ?? this.deps.maxOpenOrders;
      const open = book.openCountOf(caller.accountId) - result.selfTradeCancels.length;
      if (open >= max) {
        return fail('open_orders_limit_exceeded', `This account already has ${open} open orders in ${o.market}, the most allowed (${max}); cancel one first`, { limit: max, open });
      }
    }

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
      const limit = batch.limitOverride(caller.accountId) ?? (this.deps.roleLimits[caller.role] ?? 0n);
      // The account's own resting orders that self-trade prevention cancels rest no more once the
      // order is accepted: their share is freed, as a cancel frees it.
      const released = result.selfTradeCancels.reduce((sum, c) => sum + notionalOf(market, c.price, c.remaining), 0n);
      const usage = batch.usageOf(caller.accountId);
      const used = usage > released ? usage - released : 0n;
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
          id: `${fillBase}.${sortableCounter(k, 3)}`,
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
    // Balances may exceed 2^63 − 1 minor units (token supplies go up to 10^36), orders may not: a
    // larger holding is sold up to the largest whole lot below that bound (close again for the rest).
    const sellable = balance.available > MAX_MINOR ? MAX_MINOR : balance.available;
    const quantity = sellable - (sellable % market.lotSize);
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
