import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/store/schema.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';

const up = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

/**
 * Waits until some session waits for a lock that the session `pid` holds. Asked outside that
 * session's transaction: pg_stat_activity is read once per transaction and kept until it ends.
 */
async function untilBlockedBy(db: Kysely<Database>, pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where ${pid} = any(pg_blocking_pids(pid))`.execute(db);
    if (rows[0]!.n > 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`nothing ever waited for session ${pid}`);
}

/**
 * An order batch writes balance rows, then takes the audit chain head (its commit hook comes last).
 * Every other transaction that moves money must take them in that order too: one holding the head
 * while it waits for a balance row that an order batch holds (which then waits for the head) is a
 * deadlock, which PostgreSQL breaks only after deadlock_timeout (1 s) by aborting one of them.
 */
describe.skipIf(!up)('lock order of ledger writes and the audit chain head (postgres)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend: 'scaleout' });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Holds `owner`'s balance row of `asset` (as an order batch does) while `start` runs; answers whether the head was free while it waited. */
  async function headWhileWaiting(owner: string, asset: string, start: () => Promise<unknown>): Promise<string> {
    const { store } = server.services;
    let pending: Promise<unknown> | undefined;
    let head = 'unknown';
    const done = new Error('rolled back on purpose');
    await store.db
      .transaction()
      .execute(async (trx) => {
        const held = await trx.updateTable('balances').set({ updated_at: 1 }).where('owner', '=', owner).where('asset', '=', asset).executeTakeFirst();
        expect(Number(held.numUpdatedRows)).toBe(1);
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        pending = start();
        await untilBlockedBy(store.db, rows[0]!.pid);
        // The order batch's next step: the chain head, which it must find free (else: deadlock).
        head = await trx.selectFrom('audit_chain_head').select('seq').where('id', '=', 1).forUpdate().noWait().execute().then(
          () => 'free',
          (err: { code?: string }) => (err.code === '55P03' ? 'held by the waiting transaction' : Promise.reject(err)),
        );
        throw done; // releases the row: the waiting transaction goes on
      })
      .catch((err: unknown) => {
        if (err !== done) throw err;
      });
    await pending;
    return head;
  }

  it('a faucet grant waiting for a balance row does not hold the chain head meanwhile', async () => {
    const { trading } = server.services;
    const acc = 'acc_lock_order_faucet';
    expect((await trading.faucet.grant(acc, 'USDC', '1')).ok).toBe(true);
    let granted: unknown;
    expect(await headWhileWaiting(acc, 'USDC', async () => (granted = await trading.faucet.grant(acc, 'USDC', '1')))).toBe('free');
    expect(granted).toMatchObject({ ok: true });
  });

  it('a withdrawal request waiting for a balance row does not hold the chain head meanwhile', async () => {
    const { trading, withdrawals } = server.services;
    const acc = 'acc_lock_order_withdrawal';
    expect((await trading.faucet.grant(acc, 'USDC', '100')).ok).toBe(true);
    const actor = { kind: 'session' as const, id: 'ses_lock_order', accountId: acc };
    let requested: unknown;
    const address = '0x000000000000000000000000000000000000dEaD';
    expect(await headWhileWaiting(acc, 'USDC', async () => (requested = await withdrawals.request(acc, actor, { asset: 'USDC', amount: '10', address })))).toBe('free');
    expect(requested).toMatchObject({ ok: true });
  });
});
