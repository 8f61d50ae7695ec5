import type { BookTerms, DepthLevel, Fill, IncomingOrder, MatchResult, RestingOrder, Side } from './types.js';

interface Node {
  order: RestingOrder;
  level: Level;
  prev: Node | null;
  next: Node | null;
}

/** One price level: a FIFO queue (doubly linked, so a cancel is O(1)) and its aggregate. */
class Level {
  head: Node | null = null;
  tail: Node | null = null;
  count = 0;
  total = 0n;
  constructor(readonly price: bigint) {}

  push(node: Node): void {
    node.prev = this.tail;
    node.next = null;
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    this.count++;
    this.total += node.order.remaining;
  }

  unlink(node: Node): void {
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = null;
    this.count--;
    this.total -= node.order.remaining;
  }
}

/**
 * One side of the book: price levels kept in an array sorted worst → best (so the common case,
 * taking or emptying the best level, is a push/pop at the end), and a Map from price to level.
 * Distinct price levels are few compared with orders, so the O(levels) splice on a new level costs
 * little; orders within a level never move.
 */
class BookSide {
  /** Bids ascending by price, asks descending: best last. */
  readonly sorted: Level[] = [];
  private readonly byPrice = new Map<bigint, Level>();

  constructor(readonly side: Side) {}

  /** True when `a` is a better price than `b` for this side. */
  private better(a: bigint, b: bigint): boolean {
    return this.side === 'buy' ? a > b : a < b;
  }

  /** Index of the first level whose price is not worse than `price` (binary search). */
  private position(price: bigint): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.better(price, this.sorted[mid]!.price)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  levelFor(price: bigint): Level {
    let level = this.byPrice.get(price);
    if (!level) {
      level = new Level(price);
      this.byPrice.set(price, level);
      const n = this.sorted.length;
      if (n === 0 || this.better(price, this.sorted[n - 1]!.price)) this.sorted.push(level);
      else this.sorted.splice(this.position(price), 0, level);
    }
    return level;
  }

  dropIfEmpty(level: Level): void {
    if (level.count > 0) return;
    this.byPrice.delete(level.price);
    const n = this.sorted.length;
    if (this.sorted[n - 1] === level) this.sorted.pop();
    else this.sorted.splice(this.position(level.price), 1);
  }

  best(): Level | undefined {
    return this.sorted[this.sorted.length - 1];
  }

  /** Levels from best to worst. */
  *fromBest(): Generator<Level> {
    for (let i = this.sorted.length - 1; i >= 0; i--) yield this.sorted[i]!;
  }

  get levelCount(): number {
    return this.sorted.length;
  }
}

const BPS = 10_000n;

/**
 * A price-time priority limit order book for one market. Pure: no I/O, no clocks, and no
 * exceptions for business outcomes. Matching is two-phase so callers can check funds and limits
 * against the exact outcome before anything moves:
 *
 *   const result = book.plan(order);   // read-only: fills, fees, what rests
 *   if (acceptable(result)) book.apply(result);
 *
 * `plan` followed by `apply` with no mutation in between is the only valid use; `apply` refuses a
 * plan made against an older version of the book (a programming error, so it throws).
 */
export class OrderBook {
  private readonly bids = new BookSide('buy');
  private readonly asks = new BookSide('sell');
  private readonly index = new Map<string, Node>();
  private readonly byAccount = new Map<string, Set<string>>();
  private version = 0;
  private readonly plans = new WeakMap<MatchResult, number>();

  constructor(readonly terms: BookTerms) {}

  get size(): number {
    return this.index.size;
  }

  private sideOf(side: Side): BookSide {
    return side === 'buy' ? this.bids : this.asks;
  }

  notional(price: bigint, quantity: bigint): bigint {
    return (price * quantity) / this.terms.baseScale;
  }

  fee(notional: bigint, bps: bigint): bigint {
    return (notional * bps) / BPS;
  }

  /** Computes what matching `order` would do, without changing the book. */
  plan(order: IncomingOrder): MatchResult {
    const opposite = this.sideOf(order.side === 'buy' ? 'sell' : 'buy');
    const isMarket = order.type === 'market';
    const limit = order.price;
    const fills: Fill[] = [];
    const selfTradeCancels: MatchResult['selfTradeCancels'] = [];
    let remaining = order.quantity;
    let notional = 0n;
    let takerFees = 0n;
    let stoppedBySelfTrade = false;

    const levels = opposite.sorted;
    outer: for (let i = levels.length - 1; i >= 0; i--) {
      const level = levels[i]!;
      if (!isMarket && limit !== null && (order.side === 'buy' ? level.price > limit : level.price < limit)) break;
      for (let node = level.head; node; node = node.next) {
        const maker = node.order;
        if (maker.accountId === order.accountId) {
          const mode = order.selfTradePrevention;
          if (mode === 'cancel_maker' || mode === 'cancel_both') {
            selfTradeCancels.push({ id: maker.id, accountId: maker.accountId, side: maker.side, price: maker.price, remaining: maker.remaining });
          }
          if (mode === 'cancel_taker' || mode === 'cancel_both') {
            stoppedBySelfTrade = true;
            break outer;
          }
          continue;
        }
        const quantity = remaining < maker.remaining ? remaining : maker.remaining;
        const fillNotional = this.notional(level.price, quantity);
        const makerFee = this.fee(fillNotional, this.terms.makerFeeBps);
        const takerFee = this.fee(fillNotional, this.terms.takerFeeBps);
        fills.push({
          makerOrderId: maker.id,
          makerAccountId: maker.accountId,
          takerOrderId: order.id,
          takerAccountId: order.accountId,
          takerSide: order.side,
          price: level.price,
          quantity,
          notional: fillNotional,
          makerFee,
          takerFee,
          makerRemaining: maker.remaining - quantity,
        });
        remaining -= quantity;
        notional += fillNotional;
        takerFees += takerFee;
        if (remaining === 0n) break outer;
      }
    }

    const filled = order.quantity - remaining;
    let result: MatchResult;
    if (order.timeInForce === 'FOK' && remaining > 0n) {
      // Fill or kill: nothing happens at all, not even self-trade cancels.
      result = { order, fills: [], selfTradeCancels: [], filled: 0n, remaining: order.quantity, notional: 0n, takerFees: 0n, rests: false, status: 'expired', reason: 'fok_unfillable' };
    } else if (remaining === 0n) {
      result = { order, fills, selfTradeCancels, filled, remaining, notional, takerFees, rests: false, status: 'filled', reason: null };
    } else if (stoppedBySelfTrade) {
      result = { order, fills, selfTradeCancels, filled, remaining, notional, takerFees, rests: false, status: 'cancelled', reason: 'self_trade' };
    } else if (isMarket || order.timeInForce !== 'GTC' || limit === null) {
      result = { order, fills, selfTradeCancels, filled, remaining, notional, takerFees, rests: false, status: 'expired', reason: fills.length > 0 ? 'ioc_remainder' : 'no_liquidity' };
    } else {
      result = { order, fills, selfTradeCancels, filled, remaining, notional, takerFees, rests: true, status: filled > 0n ? 'partially_filled' : 'open', reason: null };
    }
    this.plans.set(result, this.version);
    return result;
  }

  /** Carries out a plan made by `plan` on this very version of the book. */
  apply(result: MatchResult): void {
    if (this.plans.get(result) !== this.version) throw new Error('stale or foreign match plan: plan and apply must run back to back');
    for (const c of result.selfTradeCancels) this.cancel(c.id);
    for (const f of result.fills) {
      const node = this.index.get(f.makerOrderId);
      if (!node) throw new Error(`maker ${f.makerOrderId} vanished between plan and apply`);
      const level = node.level;
      node.order.remaining -= f.quantity;
      level.total -= f.quantity;
      if (node.order.remaining === 0n) this.removeNode(node);
    }
    if (result.rests) {
      const o = result.order;
      this.insert({ id: o.id, accountId: o.accountId, side: o.side, price: o.price!, remaining: result.remaining, seq: o.seq });
    }
    this.version++;
  }

  /** Plans and, unless it is a FOK kill, applies. Convenience for callers with nothing to check. */
  place(order: IncomingOrder): MatchResult {
    const result = this.plan(order);
    this.apply(result);
    return result;
  }

  /**
   * Puts an order on the book without matching (rebuilding a book from the store). Orders must be
   * inserted in time priority order. Returns false (and changes nothing) for a duplicate id.
   */
  insert(order: RestingOrder): boolean {
    if (this.index.has(order.id) || order.remaining <= 0n) return false;
    const level = this.sideOf(order.side).levelFor(order.price);
    const node: Node = { order: { ...order }, level, prev: null, next: null };
    level.push(node);
    this.index.set(order.id, node);
    let mine = this.byAccount.get(order.accountId);
    if (!mine) this.byAccount.set(order.accountId, (mine = new Set()));
    mine.add(order.id);
    this.version++;
    return true;
  }

  private removeNode(node: Node): void {
    node.level.unlink(node);
    this.sideOf(node.order.side).dropIfEmpty(node.level);
    this.index.delete(node.order.id);
    const mine = this.byAccount.get(node.order.accountId);
    mine?.delete(node.order.id);
    if (mine && mine.size === 0) this.byAccount.delete(node.order.accountId);
  }

  /** Removes a resting order; returns it as it was, or undefined when it is not on the book. */
  cancel(orderId: string): RestingOrder | undefined {
    const node = this.index.get(orderId);
    if (!node) return undefined;
    const snapshot = { ...node.order };
    this.removeNode(node);
    this.version++;
    return snapshot;
  }

  /** Removes every resting order of an account (all of them when `accountId` is undefined). */
  cancelAll(accountId?: string): RestingOrder[] {
    const ids = accountId === undefined ? [...this.index.keys()] : [...(this.byAccount.get(accountId) ?? [])];
    const out: RestingOrder[] = [];
    for (const id of ids) {
      const o = this.cancel(id);
      if (o) out.push(o);
    }
    return out;
  }

  get(orderId: string): RestingOrder | undefined {
    const node = this.index.get(orderId);
    return node ? { ...node.order } : undefined;
  }

  /** How many orders an account has resting on this book. */
  openCountOf(accountId: string): number {
    return this.byAccount.get(accountId)?.size ?? 0;
  }

  ordersOf(accountId: string): RestingOrder[] {
    return [...(this.byAccount.get(accountId) ?? [])].map((id) => ({ ...this.index.get(id)!.order }));
  }

  bestBid(): bigint | undefined {
    return this.bids.best()?.price;
  }

  bestAsk(): bigint | undefined {
    return this.asks.best()?.price;
  }

  /** True if the best bid meets or exceeds the best ask (must never hold after matching). */
  crossed(): boolean {
    const bid = this.bestBid();
    const ask = this.bestAsk();
    return bid !== undefined && ask !== undefined && bid >= ask;
  }

  /** Aggregated levels, best first, at most `levels` per side. */
  depth(levels: number): { bids: DepthLevel[]; asks: DepthLevel[] } {
    const take = (side: BookSide) => {
      const out: DepthLevel[] = [];
      for (const level of side.fromBest()) {
        if (out.length >= levels) break;
        out.push({ price: level.price, quantity: level.total, orders: level.count });
      }
      return out;
    };
    return { bids: take(this.bids), asks: take(this.asks) };
  }

  /** Every resting order, each side best first and FIFO within a level (for checks and snapshots). */
  *orders(): Generator<RestingOrder> {
    for (const side of [this.bids, this.asks]) {
      for (const level of side.fromBest()) {
        for (let node = level.head; node; node = node.next) yield { ...node.order };
      }
    }
  }

  /** Σ remaining per side (quantity conservation checks). */
  totals(): { bids: bigint; asks: bigint; levels: number } {
    let bids = 0n;
    let asks = 0n;
    for (const l of this.bids.fromBest()) bids += l.total;
    for (const l of this.asks.fromBest()) asks += l.total;
    return { bids, asks, levels: this.bids.levelCount + this.asks.levelCount };
  }
}
