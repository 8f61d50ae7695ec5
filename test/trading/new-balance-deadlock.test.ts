import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { serviceAvailable } from '../support/services.js';
import { callerFor, fund, listMoon, twoProcessesOnPostgres, USDC } from '../support/trading.js';

const pg = await serviceAvailable('postgres');

/** Pauses the first transaction that reads `table`, right after that read, until `release()`. */
function pauseFirstRead(table: string) {
  let armed = false;
  let reached: () => void = () => {};
  const atPause = new Promise<void>((r) => (reached = r));
  let release: () => void = () => {};
  const released = new Promise<void>((r) => (release = r));
  const watched = new WeakSet<object>();
  const plugin: KyselyPlugin = {
    transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
      if (armed && args.node.kind === 'SelectQueryNode' && JSON.stringify(args.node).includes(`"${table}"`)) {
        armed = false;
        watched.add(args.queryId);
      }
      return args.node;
    },
    async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      if (watched.has(args.queryId)) {
        reached();
        await Promise.race([released, new Promise((r) => setTimeout(r, 5000))]);
      }
      return args.result;
    },
  };
  return { plugin, arm: () => void (armed = true), atPause, release: () => release() };
}

/**
 * A ledger transaction (the faucet) locks every balance row of the account when it reads it, and
 * writes the row of the granted asset at the end. If the account had no row of that asset, an order
 * batch filling a buy of it meanwhile inserts that row first (key order: MOON before USDC) and then
 * waits for the account's USDC row, which the faucet holds; the faucet's insert of the same new row
 * then waits for the batch: a deadlock, which PostgreSQL breaks only after deadlock_timeout (1 s).
 */
describe.skipIf(!pg)('a faucet grant of an asset new to the account, beside its order batch (postgres)', () => {
  const clock = new ManualClock(Date.UTC(2026, 2, 1, 12));
  const gate = pauseFirstRead('faucet_grants');
  const procs = twoProcessesOnPostgres(gate.plugin, clock, async (a) => {
    const asset = await a.assets.createAsset({ symbol: 'MOON', name: 'MOON token', decimals: 6, faucet: true }, 'test');
    if (!asset.ok) throw new Error(asset.detail);
    await listMoon(a);
  });

  it('does not deadlock with the batch that creates the same balance row', async () => {
    const { a, b } = procs;
    const acc = 'acc_newrow_taker';
    const maker = 'acc_newrow_maker';
    await fund(a, acc, 'USDC', USDC(1000));
    await fund(a, maker, 'MOON', 100_000_000n);
    expect(await b.orders.place(callerFor(maker), { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '1', quantity: '10' })).toMatchObject({ ok: true });

    gate.arm();
    const grant = a.faucet.grant(acc, 'MOON', '1');
    await gate.atPause; // the grant holds the account's balance rows (its USDC), paused after its read
    const order = b.orders.place(callerFor(acc), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '1' });
    // The batch inserts the account's new MOON row, then waits for its USDC row.
    await new Promise((r) => setTimeout(r, 300));
    const released = Date.now();
    gate.release();
    expect(await order).toMatchObject({ ok: true, value: { order: { status: 'filled' } } });
    expect(await grant).toMatchObject({ ok: true });
    const elapsed = Date.now() - released;

    // A deadlock shows as a wait of deadlock_timeout (1 s) before one side is aborted and retried.
    // (pg_stat_database.deadlocks counts it too, but that counter is shared with whatever else runs
    // on the test database.)
    // Without it, the deadlock was broken ~0.7 s after the release (1 s after the batch began to wait).
    expect(elapsed).toBeLessThan(500);
    expect((await a.ledger.verify()).violation).toBeUndefined();
  });
});
