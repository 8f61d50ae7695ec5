import type { Transaction } from 'kysely';
import type { ErrorCode, Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import type { Store } from '../../store/db.js';
import type { Database } from '../../store/schema.js';
import { readMinor } from '../money.js';
import { backoff, isRetryable } from '../retry.js';
import { LedgerTx } from './ledger-tx.js';
import { verifyLedger, type VerifyReport } from './verify.js';

export { LedgerTx, type Balance, type HoldView, type Line } from './ledger-tx.js';
export { SYSTEM_OWNERS, mayGoNegative, isSystemOwner } from './owners.js';
export { verifyLedger, type VerifyReport } from './verify.js';

export interface BalanceRow {
  asset: string;
  available: bigint;
  held: bigint;
}

class Refusal<C extends ErrorCode> extends Error {
  constructor(readonly result: { ok: false; code: C; detail: string; extra?: Record<string, unknown> }) {
    super(result.detail);
  }
}

const MAX_ATTEMPTS = 25;

/**
 * The double-entry ledger: every movement of money is a balanced journal entry in integer minor
 * units; balances are available + held per owner and asset; holds reserve funds for open orders
 * and pending withdrawals.
 *
 * @example
 * // Reserve funds for a withdrawal (issue 7), in one transaction with your own rows:
 * const r = await ledger.run(async (l, trx) => {
 *   const held = await l.openHold({ id: withdrawalId, owner: accountId, asset, amount, kind: 'withdrawal' });
 *   if (!held.ok) return held;                        // insufficient_funds: nothing is written
 *   await trx.insertInto('withdrawals').values(...).execute();
 *   return ok(held.value);
 * });
 */
export class Ledger {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /**
   * Runs `fn` in one store transaction with a fresh LedgerTx and flushes it before commit (unless
   * `fn` flushed it). A refusal returned by `fn` rolls everything back. Lost races (optimistic
   * conflicts, deadlocks, serialization failures) are retried from the start, so `fn` must not have
   * outside effects.
   *
   * An `fn` that appends to the audit log flushes the ledger first (`await ledger.flush()`, then
   * `recordIn`): the order batch writes balance rows before it takes the audit chain head, and a
   * transaction taking them the other way round (the head, then a balance row an order batch
   * holds) deadlocks with it on PostgreSQL, which breaks the deadlock only after a second.
   */
  async run<T, C extends ErrorCode>(fn: (ledger: LedgerTx, trx: Transaction<Database>) => Promise<Result<T, C>>): Promise<Result<T, C>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.transaction(async (trx) => {
          // Locking reads on PostgreSQL (SQLite transactions are serial already): these run beside
          // the order batches, which change the same balances all the time (see LedgerTx).
          const ledger = new LedgerTx(trx, this.clock.now(), this.store.dialect === 'postgres');
          const result = await fn(ledger, trx);
          if (!result.ok) throw new Refusal(result);
          if (!ledger.flushed) await ledger.flush();
          return result;
        });
      } catch (err) {
        if (err instanceof Refusal) return err.result as Result<T, C>;
        if (attempt < MAX_ATTEMPTS && isRetryable(err)) {
          await backoff(attempt);
          continue;
        }
        throw err;
      }
    }
  }

  /** Every balance of an owner, by asset. */
  async balances(owner: string): Promise<BalanceRow[]> {
    const rows = await this.store.db.selectFrom('balances').select(['asset', 'available', 'held']).where('owner', '=', owner).orderBy('asset').execute();
    return rows.map((r) => ({ asset: r.asset, available: readMinor(r.available), held: readMinor(r.held) }));
  }

  verify(): Promise<VerifyReport> {
    return verifyLedger(this.store);
  }
}
