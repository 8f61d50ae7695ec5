import { describe, expect, it } from 'vitest';
import { OrderBook } from './book.js';
import type { IncomingOrder, SelfTradePrevention, TimeInForce } from './types.js';

// Base decimals 0 (baseScale 1) keep the arithmetic readable: notional = price × quantity.
const terms = { baseScale: 1n, makerFeeBps: 10n, takerFeeBps: 20n };
let seq = 0;
function order(p: Partial<IncomingOrder> & Pick<IncomingOrder, 'side'>): IncomingOrder {
  seq++;
  return {
    id: p.id ?? `o${seq}`,
    accountId: p.accountId ?? 'a',
    side: p.side,
    type: p.type ?? 'limit',
    price: p.price === undefined ? 100n : p.price,
    quantity: p.quantity ?? 10n,
    timeInForce: p.timeInForce ?? 'GTC',
    selfTradePrevention: p.selfTradePrevention ?? 'cancel_maker',
    seq,
  };
}

function bookWith(...orders: IncomingOrder[]): OrderBook {
  const book = new OrderBook(terms);
  for (const o of orders) book.place(o);
  return book;
}

describe('resting and priority', () => {
  it('rests a GTC limit that does not cross, best price first', () => {
    const book = bookWith(order({ side: 'buy', price: 99n, accountId: 'b1' }), order({ side: 'buy', price: 101n, accountId: 'b2' }), order({ side: 'sell', price: 105n, accountId: 's1' }), order({ side: 'sell', price: 103n, accountId: 's2' }));
    expect(book.bestBid()).toBe(101n);
    expect(book.bestAsk()).toBe(103n);
    expect(book.crossed()).toBe(false);
    expect(book.depth(5)).toEqual({
      bids: [{ price: 101n, quantity: 10n, orders: 1 }, { price: 99n, quantity: 10n, orders: 1 }],
      asks: [{ price: 103n, quantity: 10n, orders: 1 }, { price: 105n, quantity: 10n, orders: 1 }],
    });
  });

  it('fills the best price first, then FIFO within a level', () => {
    const first = order({ side: 'sell', price: 100n, quantity: 5n, accountId: 'm1' });
    const second = order({ side: 'sell', price: 100n, quantity: 5n, accountId: 'm2' });
    const better = order({ side: 'sell', price: 99n, quantity: 5n, accountId: 'm3' });
    const book = bookWith(first, second, better);
    const r = book.place(order({ side: 'buy', price: 100n, quantity: 8n, accountId: 't' }));
    expect(r.fills.map((f) => [f.makerOrderId, f.price, f.quantity])).toEqual([
      [better.id, 99n, 5n],
      [first.id, 100n, 3n],
    ]);
    expect(r.status).toBe('filled');
    expect(book.get(first.id)?.remaining).toBe(2n);
    expect(book.get(second.id)?.remaining).toBe(5n);
    expect(book.get(better.id)).toBeUndefined();
  });

  it('trades at the maker price and computes notional and fees (floor)', () => {
    const book = bookWith(order({ side: 'buy', price: 101n, quantity: 7n, accountId: 'm' }));
    const r = book.place(order({ side: 'sell', price: 95n, quantity: 7n, accountId: 't' }));
    const f = r.fills[0]!;
    expect(f.price).toBe(101n);
    expect(f.notional).toBe(707n);
    expect(f.makerFee).toBe((707n * 10n) / 10_000n); // 0 after flooring
    expect(f.takerFee).toBe(1n); // 707 × 20 / 10000 = 1.414 → 1
    expect(r.notional).toBe(707n);
  });

  it('partially fills and rests the remainder of a GTC', () => {
    const book = bookWith(order({ side: 'sell', price: 100n, quantity: 4n, accountId: 'm' }));
    const t = order({ side: 'buy', price: 100n, quantity: 10n, accountId: 't' });
    const r = book.place(t);
    expect(r).toMatchObject({ status: 'partially_filled', filled: 4n, remaining: 6n, rests: true });
    expect(book.get(t.id)?.remaining).toBe(6n);
    expect(book.bestBid()).toBe(100n);
    expect(book.bestAsk()).toBeUndefined();
  });

  it('uses notional exact to the base scale', () => {
    const book = new OrderBook({ baseScale: 100n, makerFeeBps: 0n, takerFeeBps: 0n });
    book.place(order({ side: 'sell', price: 250n, quantity: 40n, accountId: 'm' })); // 0.40 units at 2.50
    const r = book.place(order({ side: 'buy', price: 250n, quantity: 40n, accountId: 't' }));
    expect(r.fills[0]!.notional).toBe(100n);
  });
});

describe('time in force', () => {
  const tifCase = (tif: TimeInForce) => {
    const book = bookWith(order({ side: 'sell', price: 100n, quantity: 4n, accountId: 'm' }));
    const t = order({ side: 'buy', price: 100n, quantity: 10n, accountId: 't', timeInForce: tif });
    return { book, t, r: book.place(t) };
  };

  it('IOC fills what it can and expires the rest without resting', () => {
    const { book, t, r } = tifCase('IOC');
    expect(r).toMatchObject({ status: 'expired', reason: 'ioc_remainder', filled: 4n, remaining: 6n, rests: false });
    expect(book.get(t.id)).toBeUndefined();
    expect(book.size).toBe(0);
  });

  it('IOC with nothing to take expires with no_liquidity', () => {
    const book = new OrderBook(terms);
    const r = book.place(order({ side: 'buy', timeInForce: 'IOC' }));
    expect(r).toMatchObject({ status: 'expired', reason: 'no_liquidity', fills: [] });
  });

  it('FOK that cannot fill entirely changes nothing', () => {
    const { book, r } = tifCase('FOK');
    expect(r).toMatchObject({ status: 'expired', reason: 'fok_unfillable', fills: [], filled: 0n, remaining: 10n });
    expect(book.totals()).toEqual({ bids: 0n, asks: 4n, levels: 1 });
  });

  it('FOK that can fill entirely fills across levels', () => {
    const book = bookWith(order({ side: 'sell', price: 100n, quantity: 4n, accountId: 'm' }), order({ side: 'sell', price: 101n, quantity: 6n, accountId: 'm2' }));
    const r = book.place(order({ side: 'buy', price: 101n, quantity: 10n, accountId: 't', timeInForce: 'FOK' }));
    expect(r.status).toBe('filled');
    expect(r.fills.map((f) => f.quantity)).toEqual([4n, 6n]);
    expect(book.size).toBe(0);
  });

  it('FOK respects its limit price', () => {
    const book = bookWith(order({ side: 'sell', price: 100n, quantity: 4n, accountId: 'm' }), order({ side: 'sell', price: 102n, quantity: 6n, accountId: 'm2' }));
    const r = book.place(order({ side: 'buy', price: 101n, quantity: 10n, accountId: 't', timeInForce: 'FOK' }));
    expect(r.status).toBe('expired');
    expect(book.totals().asks).toBe(10n);
  });

  it('a market order sweeps levels regardless of price and never rests', () => {
    const book = bookWith(order({ side: 'buy', price: 100n, quantity: 4n, accountId: 'm' }), order({ side: 'buy', price: 50n, quantity: 4n, accountId: 'm2' }));
    const r = book.place(order({ side: 'sell', type: 'market', price: null, quantity: 10n, accountId: 't', timeInForce: 'IOC' }));
    expect(r).toMatchObject({ status: 'expired', reason: 'ioc_remainder', filled: 8n, remaining: 2n, rests: false, notional: 600n });
    expect(book.size).toBe(0);
  });

  it('a market FOK is killed when the book is too thin', () => {
    const book = bookWith(order({ side: 'buy', price: 100n, quantity: 4n, accountId: 'm' }));
    const r = book.place(order({ side: 'sell', type: 'market', price: null, quantity: 5n, accountId: 't', timeInForce: 'FOK' }));
    expect(r.status).toBe('expired');
    expect(book.totals().bids).toBe(4n);
  });
});

describe('self-trade prevention', () => {
  const setup = (mode: SelfTradePrevention) => {
    const own = order({ side: 'sell', price: 100n, quantity: 5n, accountId: 'me' });
    const other = order({ side: 'sell', price: 100n, quantity: 5n, accountId: 'you' });
    const book = bookWith(own, other);
    const taker = order({ side: 'buy', price: 100n, quantity: 8n, accountId: 'me', selfTradePrevention: mode });
    return { book, own, other, taker, r: book.place(taker) };
  };

  it('cancel_maker removes the own resting order and keeps matching', () => {
    const { book, own, other, taker, r } = setup('cancel_maker');
    expect(r.selfTradeCancels.map((c) => c.id)).toEqual([own.id]);
    expect(r.fills.map((f) => f.makerOrderId)).toEqual([other.id]);
    expect(r).toMatchObject({ status: 'partially_filled', filled: 5n, remaining: 3n });
    expect(book.get(own.id)).toBeUndefined();
    expect(book.get(taker.id)?.remaining).toBe(3n);
    expect(r.fills.every((f) => f.makerAccountId !== f.takerAccountId)).toBe(true);
  });

  it('cancel_taker stops the incoming order and leaves the resting one', () => {
    const { book, own, taker, r } = setup('cancel_taker');
    expect(r).toMatchObject({ status: 'cancelled', reason: 'self_trade', fills: [], selfTradeCancels: [], remaining: 8n, rests: false });
    expect(book.get(own.id)?.remaining).toBe(5n);
    expect(book.get(taker.id)).toBeUndefined();
  });

  it('cancel_both removes the resting order and stops the incoming one', () => {
    const { book, own, other, r } = setup('cancel_both');
    expect(r).toMatchObject({ status: 'cancelled', reason: 'self_trade', fills: [] });
    expect(r.selfTradeCancels.map((c) => c.id)).toEqual([own.id]);
    expect(book.get(own.id)).toBeUndefined();
    expect(book.get(other.id)?.remaining).toBe(5n);
  });

  it('cancel_taker after a fill from someone else keeps that fill', () => {
    const other = order({ side: 'sell', price: 99n, quantity: 2n, accountId: 'you' });
    const own = order({ side: 'sell', price: 100n, quantity: 5n, accountId: 'me' });
    const book = bookWith(other, own);
    const r = book.place(order({ side: 'buy', price: 100n, quantity: 8n, accountId: 'me', selfTradePrevention: 'cancel_taker' }));
    expect(r).toMatchObject({ status: 'cancelled', reason: 'self_trade', filled: 2n, remaining: 6n });
  });

  it('a FOK killed by self-trade prevention cancels nothing', () => {
    const own = order({ side: 'sell', price: 100n, quantity: 5n, accountId: 'me' });
    const book = bookWith(own);
    const r = book.place(order({ side: 'buy', price: 100n, quantity: 5n, accountId: 'me', timeInForce: 'FOK', selfTradePrevention: 'cancel_both' }));
    expect(r).toMatchObject({ status: 'expired', reason: 'fok_unfillable', selfTradeCancels: [] });
    expect(book.get(own.id)?.remaining).toBe(5n);
  });
});

describe('fees', () => {
  it('charges maker and taker bps on the notional, rounded down', () => {
    const book = new OrderBook({ baseScale: 1n, makerFeeBps: 25n, takerFeeBps: 50n });
    book.place(order({ side: 'sell', price: 1_000n, quantity: 3n, accountId: 'm' }));
    const r = book.place(order({ side: 'buy', price: 1_000n, quantity: 3n, accountId: 't' }));
    expect(r.fills[0]).toMatchObject({ notional: 3_000n, makerFee: 7n, takerFee: 15n });
    expect(r.takerFees).toBe(15n);
  });

  it('zero bps charges nothing', () => {
    const book = new OrderBook({ baseScale: 1n, makerFeeBps: 0n, takerFeeBps: 0n });
    book.place(order({ side: 'sell', price: 1_000n, quantity: 3n, accountId: 'm' }));
    const r = book.place(order({ side: 'buy', price: 1_000n, quantity: 3n, accountId: 't' }));
    expect(r.fills[0]).toMatchObject({ makerFee: 0n, takerFee: 0n });
  });
});

describe('cancel', () => {
  it('cancels one order by id and reports unknown ids', () => {
    const a = order({ side: 'buy', price: 100n });
    const b = order({ side: 'buy', price: 100n });
    const book = bookWith(a, b);
    expect(book.cancel(a.id)?.id).toBe(a.id);
    expect(book.cancel(a.id)).toBeUndefined();
    expect(book.depth(1).bids).toEqual([{ price: 100n, quantity: 10n, orders: 1 }]);
  });

  it('cancels all orders of one account, leaving others', () => {
    const book = bookWith(order({ side: 'buy', price: 99n, accountId: 'x' }), order({ side: 'sell', price: 105n, accountId: 'x' }), order({ side: 'buy', price: 98n, accountId: 'y' }));
    const cancelled = book.cancelAll('x');
    expect(cancelled).toHaveLength(2);
    expect(book.size).toBe(1);
    expect(book.bestBid()).toBe(98n);
    expect(book.bestAsk()).toBeUndefined();
    expect(book.cancelAll()).toHaveLength(1);
    expect(book.size).toBe(0);
  });

  it('counts each account\'s resting orders as they rest, fill and are cancelled', () => {
    const a = order({ side: 'buy', price: 99n, accountId: 'x' });
    const book = bookWith(a, order({ side: 'sell', price: 105n, accountId: 'x' }), order({ side: 'buy', price: 98n, accountId: 'y' }));
    expect([book.openCountOf('x'), book.openCountOf('y'), book.openCountOf('z')]).toEqual([2, 1, 0]);
    book.place(order({ side: 'sell', price: 99n, quantity: 10n, accountId: 'y' }));
    expect(book.openCountOf('x')).toBe(1);
    book.cancelAll('x');
    expect(book.openCountOf('x')).toBe(0);
  });

  it('removes an emptied middle level and keeps the others sorted', () => {
    const mid = order({ side: 'sell', price: 102n });
    const book = bookWith(order({ side: 'sell', price: 101n }), mid, order({ side: 'sell', price: 103n }));
    book.cancel(mid.id);
    expect(book.depth(5).asks.map((l) => l.price)).toEqual([101n, 103n]);
  });
});

describe('plan and apply', () => {
  it('plan changes nothing until applied', () => {
    const book = bookWith(order({ side: 'sell', price: 100n, quantity: 4n, accountId: 'm' }));
    const plan = book.plan(order({ side: 'buy', price: 100n, quantity: 4n, accountId: 't' }));
    expect(plan.fills).toHaveLength(1);
    expect(book.totals().asks).toBe(4n);
    book.apply(plan);
    expect(book.totals().asks).toBe(0n);
  });

  it('refuses a plan made before the book changed', () => {
    const book = bookWith(order({ side: 'sell', price: 100n, quantity: 4n, accountId: 'm' }));
    const plan = book.plan(order({ side: 'buy', price: 100n, quantity: 4n, accountId: 't' }));
    book.place(order({ side: 'buy', price: 90n, accountId: 'z' }));
    expect(() => book.apply(plan)).toThrow(/stale/);
  });

  it('insert refuses duplicates and rebuilds priority from seq order', () => {
    const book = new OrderBook(terms);
    expect(book.insert({ id: 'x', accountId: 'a', side: 'sell', price: 100n, remaining: 1n, seq: 1 })).toBe(true);
    expect(book.insert({ id: 'x', accountId: 'a', side: 'sell', price: 100n, remaining: 1n, seq: 1 })).toBe(false);
    book.insert({ id: 'y', accountId: 'b', side: 'sell', price: 100n, remaining: 1n, seq: 2 });
    const r = book.place(order({ side: 'buy', price: 100n, quantity: 1n, accountId: 't' }));
    expect(r.fills[0]!.makerOrderId).toBe('x');
  });
});
