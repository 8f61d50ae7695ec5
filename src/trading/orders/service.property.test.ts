import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { openTestStore } from '../../../test/support/stores.js';
import { callerFor, fund, listMoon, MOON, tradingOn, USDC } from '../../../test/support/trading.js';
import { readMinor } from '../money.js';
import type { PlaceOrderInput } from './types.js';

/**
 * Random order streams through the real order service and store (SQLite), some of them sent
 * concurrently so they group-commit together. Afterwards: the ledger verifies, the in-memory book
 * equals the open orders in the store, is not crossed, and every order's fills add up.
 */
const ACCOUNTS = ['acc_p1', 'acc_p2', 'acc_p3'];

const order = fc.record({
  account: fc.constantFrom(...ACCOUNTS),
  side: fc.constantFrom<'buy' | 'sell'>('buy', 'sell'),
  type: fc.constantFrom<'limit' | 'market'>('limit', 'limit', 'market'),
  price: fc.integer({ min: 95, max: 105 }).map((p) => (p / 100).toFixed(2)),
  quantity: fc.integer({ min: 1, max: 300 }).map((q) => (q / 100).toFixed(2)),
  timeInForce: fc.constantFrom<'GTC' | 'IOC' | 'FOK'>('GTC', 'GTC', 'IOC', 'FOK'),
  selfTradePrevention: fc.constantFrom<'cancel_maker' | 'cancel_taker' | 'cancel_both'>('cancel_maker', 'cancel_taker', 'cancel_both'),
  cancelAfter: fc.boolean(),
});

describe('order service under random order streams', () => {
  it('keeps the ledger verified and the book equal to the store', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(order, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 }), async (waves) => {
        const store = await openTestStore('sqlite');
        const clock = new ManualClock();
        const trading = await tradingOn(store, { clock });
        try {
          await listMoon(trading);
          for (const a of ACCOUNTS) {
            await fund(trading, a, 'USDC', USDC(20));
            await fund(trading, a, 'MOON', MOON(10));
          }
          for (const wave of waves) {
            // One wave is sent at once: its orders share a transaction.
            const results = await Promise.all(
              wave.map((o) => {
                const input: PlaceOrderInput = { market: 'MOON-USDC', side: o.side, type: o.type, quantity: o.quantity, selfTradePrevention: o.selfTradePrevention };
                if (o.type === 'limit') Object.assign(input, { price: o.price, timeInForce: o.timeInForce });
                else input.timeInForce = o.timeInForce === 'GTC' ? 'IOC' : o.timeInForce;
                return trading.orders.place(callerFor(o.account), input);
              }),
            );
            for (const r of results) if (!r.ok) expect(['insufficient_funds', 'validation_failed']).toContain(r.code);
            const toCancel = results.flatMap((r, i) => (r.ok && wave[i]!.cancelAfter && (r.value.order.status === 'open' || r.value.order.status === 'partially_filled') ? [r.value.order] : []));
            await Promise.all(toCancel.map((o) => trading.orders.cancel(callerFor(o.accountId), o.id)));
            clock.advance(1000);
          }

          const report = await trading.ledger.verify();
          expect(report.violation).toBeUndefined();

          const snap = await trading.orders.snapshot('MOON-USDC');
          const open = await store.db.selectFrom('orders').selectAll().where('status', 'in', ['open', 'partially_filled']).execute();
          const agg = (side: 'buy' | 'sell') => {
            const m = new Map<bigint, bigint>();
            for (const o of open.filter((x) => x.side === side)) m.set(readMinor(o.price), (m.get(readMinor(o.price)) ?? 0n) + readMinor(o.remaining));
            return [...m].sort(([a], [b]) => (side === 'buy' ? (a > b ? -1 : 1) : a < b ? -1 : 1)).map(([price, quantity]) => ({ price, quantity }));
          };
          expect(snap!.bids.map(({ price, quantity }) => ({ price, quantity }))).toEqual(agg('buy'));
          expect(snap!.asks.map(({ price, quantity }) => ({ price, quantity }))).toEqual(agg('sell'));
          if (snap!.bids[0] && snap!.asks[0]) expect(snap!.bids[0].price < snap!.asks[0].price).toBe(true);

          const orders = await store.db.selectFrom('orders').selectAll().execute();
          const fills = await store.db.selectFrom('fills').selectAll().execute();
          for (const o of orders) {
            const mine = fills.filter((f) => f.taker_order_id === o.id || f.maker_order_id === o.id);
            expect(mine.reduce((s, f) => s + readMinor(f.quantity), 0n)).toBe(readMinor(o.filled));
            expect(readMinor(o.filled) + readMinor(o.remaining)).toBeLessThanOrEqual(readMinor(o.quantity));
            if (o.status === 'filled') expect(readMinor(o.filled)).toBe(readMinor(o.quantity));
          }
          for (const f of fills) expect(f.maker_account_id).not.toBe(f.taker_account_id);
        } finally {
          await trading.close();
          await store.close();
        }
      }),
      { numRuns: 25 },
    );
  });
});
