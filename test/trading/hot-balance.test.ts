import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { serviceAvailable } from '../support/services.js';
import { callerFor, fund, listMoon, twoProcessesOnPostgres, USDC } from '../support/trading.js';

const pg = await serviceAvailable('postgres');

/**
 * Pauses every transaction that reads `table`, right after that read, until `release()`; `next()`
 * resolves at each pause. What a busy scale-out deployment does to a slow transaction by chance.
 */
function pauseEveryRead(table: string) {
  let waiting: (() => void) | null = null;
  let paused: (() => void) | null = null;
  const watched = new WeakSet<object>();
  const plugin: KyselyPlugin = {
    transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
      if (args.node.kind === 'SelectQueryNode' && JSON.stringify(args.node).includes(`"${table}"`)) watched.add(args.queryId);
      return args.node;
    },
    async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      if (watched.has(args.queryId)) {
        const resume = new Promise<void>((r) => (paused = r));
        waiting?.();
        await Promise.race([resume, new Promise((r) => setTimeout(r, 3000))]);
      }
      return args.result;
    },
  };
  return {
    plugin,
    next: () => new Promise<void>((r) => (waiting = r)),
    release: () => paused?.(),
  };
}

// Two scale-out processes on one PostgreSQL: one credits an account (the faucet; withdrawals and
// token launches are alike) while the other commits that account's orders.
describe.skipIf(!pg)('a ledger transaction on a balance the account keeps trading on (postgres)', () => {
  const clock = new ManualClock(Date.UTC(2026, 2, 1, 12));
  const gate = pauseEveryRead('faucet_grants');
  const procs = twoProcessesOnPostgres(gate.plugin, clock, async (a) => void (await listMoon(a)));

  it('is not starved into a failure by order commits that keep changing the balance it read', async () => {
    const { a, b } = procs;
    const acc = 'acc_hot_balance';
    await fund(a, acc, 'USDC', USDC(1000));
    let outcome: unknown;
    const grant = a.faucet.grant(acc, 'USDC', '10').then(
      (r) => (outcome = r),
      (err: unknown) => (outcome = err),
    );
    // Every attempt of the grant reads the balance, then (paused here) the account's order in the
    // other process commits, changing that balance, before the grant writes it.
    for (let attempt = 0; attempt < 30 && outcome === undefined; attempt++) {
      const paused = await Promise.race([gate.next().then(() => true), grant.then(() => false)]);
      if (!paused) break;
      const order = b.orders.place(callerFor(acc), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '1' });
      // The order commits, or waits for the grant to finish first.
      await Promise.race([order, new Promise((r) => setTimeout(r, 200))]);
      gate.release();
      expect(await order).toMatchObject({ ok: true });
    }
    await grant;
    expect(outcome).toMatchObject({ ok: true, value: { amount: USDC(10) } });
    expect((await a.ledger.verify()).violation).toBeUndefined();
  });
});
