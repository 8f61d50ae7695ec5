import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fillLines, restingHold, takerRequirement } from '../orders/settlement.js';
import { OrderBook } from './book.js';
import type { BookTerms, Fill, IncomingOrder, SelfTradePrevention, Side, TimeInForce } from './types.js';

/**
 * Random order streams against the engine, with the settlement rules the service posts applied to
 * a model ledger. After every step: the book is never crossed, every order's quantity is conserved,
 * the book holds exactly what a simple reference matcher says it should, each asset sums to what
 * it started with (every entry balanced), no balance or hold goes below zero, and held balances
 * equal the holds of resting orders.
 */

// Base has 2 decimals. Fee pairs include maker > taker and equal fees, where holds are tightest.
const TERMS: BookTerms[] = [
  { baseScale: 100n, makerFeeBps: 15n, takerFeeBps: 30n },
  { baseScale: 100n, makerFeeBps: 30n, takerFeeBps: 15n },
  { baseScale: 100n, makerFeeBps: 25n, takerFeeBps: 25n },
  { baseScale: 100n, makerFeeBps: 0n, takerFeeBps: 0n },
];
const ACCOUNTS = ['a', 'b', 'c', 'd'];
const FEES = 'fees';

type Cmd =
  | { kind: 'place'; account: string; side: Side; type: 'limit' | 'market'; priceTicks: number; oddLot: boolean; lots: number; tif: TimeInForce; stp: SelfTradePrevention }
  | { kind: 'cancel'; pick: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('place' as const),
      account: fc.constantFrom(...ACCOUNTS),
      side: fc.constantFrom<Side>('buy', 'sell'),
      type: fc.constantFrom<'limit' | 'market'>('limit', 'limit', 'limit', 'market'),
      priceTicks: fc.integer({ min: 90, max: 110 }),
      oddLot: fc.boolean(),
      lots: fc.integer({ min: 1, max: 40 }),
      tif: fc.constantFrom<TimeInForce>('GTC', 'GTC', 'IOC', 'FOK'),
      stp: fc.constantFrom<SelfTradePrevention>('cancel_maker', 'cancel_taker', 'cancel_both'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
);

/** A deliberately simple reference: all resting orders in one array, scanned linearly. */
class Reference {
  orders: { id: string; accountId: string; side: Side; price: bigint; remaining: bigint; seq: number }[] = [];
  match(o: IncomingOrder): { fills: { maker: string; qty: bigint; price: bigint }[]; cancels: string[]; remaining: bigint } {
    const fills: { maker: string; qty: bigint; price: bigint }[] = [];
    const cancels: string[] = [];
    let remaining = o.quantity;
    const opposite = this.orders
      .filter((r) => r.side !== o.side)
      .sort((x, y) => (x.price === y.price ? x.seq - y.seq : o.side === 'buy' ? (x.price < y.price ? -1 : 1) : x.price > y.price ? -1 : 1));
    let stopped = false;
    for (const r of opposite) {
      if (remaining === 0n || stopped) break;
      if (o.type === 'limit' && (o.side === 'buy' ? r.price > o.price! : r.price < o.price!)) break;
      if (r.accountId === o.accountId) {
        if (o.selfTradePrevention !== 'cancel_taker') cancels.push(r.id);
        if (o.selfTradePrevention !== 'cancel_maker') stopped = true;
        continue;
      }
      const q = remaining < r.remaining ? remaining : r.remaining;
      fills.push({ maker: r.id, qty: q, price: r.price });
      remaining -= q;
    }
    if (o.timeInForce === 'FOK' && remaining > 0n) return { fills: [], cancels: [], remaining: o.quantity };
    return { fills, cancels, remaining };
  }
}

/** Model ledger: available / held per owner and asset, holds per order. */
class ModelLedger {
  bal = new Map<string, { available: bigint; held: bigint }>();
  holds = new Map<string, { owner: string; asset: string; amount: bigint }>();
  private b(owner: string, asset: string) {
    const k = `${owner}/${asset}`;
    let v = this.bal.get(k);
    if (!v) this.bal.set(k, (v = { available: 0n, held: 0n }));
    return v;
  }
  available(owner: string, asset: string) {
    return this.b(owner, asset).available;
  }
  post(lines: { owner: string; asset: string; amount: bigint; hold?: string }[]) {
    const sums = new Map<string, bigint>();
    for (const l of lines) sums.set(l.asset, (sums.get(l.asset) ?? 0n) + l.amount);
    for (const [, s] of sums) expect(s).toBe(0n);
    for (const l of lines) {
      if (l.hold) {
        const h = this.holds.get(l.hold)!;
        expect(h).toBeDefined();
        h.amount += l.amount;
        expect(h.amount).toBeGreaterThanOrEqual(0n);
        this.b(l.owner, l.asset).held += l.amount;
      } else this.b(l.owner, l.asset).available += l.amount;
    }
  }
  openHold(id: string, owner: string, asset: string, amount: bigint) {
    this.holds.set(id, { owner, asset, amount: 0n });
    this.post([{ owner, asset, amount: -amount }, { owner, asset, amount, hold: id }]);
  }
  release(id: string) {
    const h = this.holds.get(id);
    if (!h || h.amount === 0n) return;
    this.post([{ owner: h.owner, asset: h.asset, amount: -h.amount, hold: id }, { owner: h.owner, asset: h.asset, amount: h.amount }]);
  }
}

describe('matching engine under random order streams', () => {
  it('keeps the book uncrossed, quantities conserved and the ledger balanced', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TERMS), fc.array(cmd, { minLength: 1, maxLength: 80 }), (terms, cmds) => {
        const book = new OrderBook(terms);
        const ref = new Reference();
        const ledger = new ModelLedger();
        const start = { base: 0n, quote: 0n };
        for (const a of ACCOUNTS) {
          ledger.post([{ owner: 'issuer', asset: 'BASE', amount: -50_00n }, { owner: a, asset: 'BASE', amount: 50_00n }]);
          ledger.post([{ owner: 'issuer', asset: 'QUOTE', amount: -8_000_00n }, { owner: a, asset: 'QUOTE', amount: 8_000_00n }]);
          start.base += 50_00n;
          start.quote += 8_000_00n;
        }
        let seq = 0;
        const placed: string[] = [];
        for (const c of cmds) {
          if (c.kind === 'cancel') {
            const resting = [...book.orders()];
            if (resting.length === 0) continue;
            const victim = resting[c.pick % resting.length]!;
            expect(book.cancel(victim.id)?.remaining).toBe(victim.remaining);
            ref.orders = ref.orders.filter((r) => r.id !== victim.id);
            ledger.release(victim.id);
            continue;
          }
          const o: IncomingOrder = {
            id: `o${++seq}`,
            accountId: c.account,
            side: c.side,
            type: c.type,
            price: c.type === 'limit' ? BigInt(c.priceTicks) * 100n + (c.oddLot ? 37n : 0n) : null,
            quantity: BigInt(c.lots) * (c.oddLot ? 1n : 10n),
            timeInForce: c.type === 'market' && c.tif === 'GTC' ? 'IOC' : c.tif,
            selfTradePrevention: c.stp,
            seq,
          };
          const plan = book.plan(o);
          // Funds check as the service does it: skip what the account cannot pay.
          const need = takerRequirement(plan, terms);
          if (ledger.available(o.accountId, o.side === 'buy' ? 'QUOTE' : 'BASE') < need.amount) continue;

          const expected = ref.match(o);
          book.apply(plan);
          placed.push(o.id);

          // Same fills, same cancels as the reference.
          expect(plan.fills.map((f) => [f.makerOrderId, f.quantity, f.price])).toEqual(expected.fills.map((f) => [f.maker, f.qty, f.price]));
          expect(plan.selfTradeCancels.map((x) => x.id)).toEqual(expected.cancels);
          // Conservation and sanity of every fill.
          expect(plan.filled + plan.remaining).toBe(o.quantity);
          expect(plan.fills.reduce((s, f: Fill) => s + f.quantity, 0n)).toBe(plan.filled);
          for (const f of plan.fills) {
            expect(f.makerAccountId).not.toBe(f.takerAccountId);
            if (o.price !== null) expect(o.side === 'buy' ? f.price <= o.price : f.price >= o.price).toBe(true);
          }
          expect(book.crossed()).toBe(false);

          // Settle into the model ledger with the service's own rules.
          for (const x of plan.selfTradeCancels) ledger.release(x.id);
          for (const f of plan.fills) {
            ledger.post(fillLines(f, { base: 'BASE', quote: 'QUOTE', feeOwner: FEES }));
            if (f.makerRemaining === 0n) ledger.release(f.makerOrderId);
          }
          if (plan.rests) ledger.openHold(o.id, o.accountId, o.side === 'buy' ? 'QUOTE' : 'BASE', restingHold(o.side, o.price!, plan.remaining, terms));

          // Reference book follows.
          ref.orders = ref.orders.filter((r) => !expected.cancels.includes(r.id));
          for (const f of expected.fills) {
            const r = ref.orders.find((x) => x.id === f.maker)!;
            r.remaining -= f.qty;
          }
          ref.orders = ref.orders.filter((r) => r.remaining > 0n);
          if (plan.rests) ref.orders.push({ id: o.id, accountId: o.accountId, side: o.side, price: o.price!, remaining: plan.remaining, seq: o.seq });
        }

        // The book is exactly the reference's resting set.
        const actual = [...book.orders()].map((r) => `${r.id}:${r.remaining}`).sort();
        expect(actual).toEqual(ref.orders.map((r) => `${r.id}:${r.remaining}`).sort());
        const totals = book.totals();
        expect(totals.bids + totals.asks).toBe(ref.orders.reduce((s, r) => s + r.remaining, 0n));

        // Ledger: assets conserved, nothing negative, held = holds of resting orders.
        let base = 0n;
        let quote = 0n;
        for (const [k, v] of ledger.bal) {
          expect(v.available).toBeGreaterThanOrEqual(k.startsWith('issuer/') ? -(10n ** 30n) : 0n);
          expect(v.held).toBeGreaterThanOrEqual(0n);
          if (k.startsWith('issuer/')) continue;
          if (k.endsWith('/BASE')) base += v.available + v.held;
          else quote += v.available + v.held;
        }
        expect(base).toBe(start.base);
        expect(quote).toBe(start.quote);
        const resting = new Set([...book.orders()].map((r) => r.id));
        for (const [id, h] of ledger.holds) expect(h.amount > 0n).toBe(resting.has(id));
        for (const a of [...ACCOUNTS, FEES]) {
          for (const asset of ['BASE', 'QUOTE']) {
            const held = [...ledger.holds.values()].filter((h) => h.owner === a && h.asset === asset).reduce((s, h) => s + h.amount, 0n);
            expect(ledger.bal.get(`${a}/${asset}`)?.held ?? 0n).toBe(held);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
