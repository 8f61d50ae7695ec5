import { lockAdminTarget, NO_LONGER_ADMIN, type AccountRef } from '../accounts/accounts.js';
import type { AuditLog } from '../audit/audit-log.js';
import { fail, ok, type Result } from '../errors/registry.js';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';
import type { Clock } from '../lib/clock.js';
import type { Role } from '../security/rbac/roles.js';
import type { Store } from '../store/db.js';
import { USDC_DECIMALS } from './assets/index.js';
import { formatAmount, parseAmount, readMinor } from './money.js';
import { firstWindowMinute } from './orders/batch.js';
import type { OrdersService } from './orders/service.js';

export interface LimitStatus {
  /** USDC minor units allowed over a rolling 24 h. */
  limit: bigint;
  /** Whether an admin override sets it (else the role default). */
  overridden: boolean;
  /** Notional traded in the window. */
  traded: bigint;
  /** Notional of resting orders (they may still trade). */
  open: bigint;
  remaining: bigint;
  /** Most orders the account may rest per market: its admin override, else the configured default. */
  maxOpenOrders: number;
}

/** The open-orders cap of one account: what applies, the configured default, and whether an admin override sets it. */
export interface OpenOrdersLimitStatus {
  maxOpenOrders: number;
  default: number;
  overridden: boolean;
}

/** Bounds of an admin's open-orders override (those of MOONDRAFT_MAX_OPEN_ORDERS). */
export const MAX_OPEN_ORDERS_BOUNDS = { min: 1, max: 100_000 } as const;

/** Checks an admin's open-orders override (an integer 1..100000; null clears it), before anything is written. */
export function parseMaxOpenOrders(maxOpenOrders: number | null): Result<number | null, 'validation_failed'> {
  if (maxOpenOrders === null) return ok(null);
  if (!Number.isSafeInteger(maxOpenOrders) || maxOpenOrders < MAX_OPEN_ORDERS_BOUNDS.min || maxOpenOrders > MAX_OPEN_ORDERS_BOUNDS.max) {
    return fail('validation_failed', `maxOpenOrders must be an integer from ${MAX_OPEN_ORDERS_BOUNDS.min} to ${MAX_OPEN_ORDERS_BOUNDS.max}, or null`);
  }
  return ok(maxOpenOrders);
}

/** Parses an admin's override (a USDC decimal string; null clears it), before anything is written. */
export function parseDailyNotional(dailyNotional: string | null): Result<bigint | null, 'validation_failed'> {
  if (dailyNotional === null) return ok(null);
  const amount = parseAmount(dailyNotional, USDC_DECIMALS, 'dailyNotional', { positive: false });
  return amount.ok ? amount : fail('validation_failed', amount.detail);
}

/**
 * Daily trading limits: notional traded over a rolling 24 h plus what rests on the books, against
 * the role's default or an admin's per-account override. Enforced inside the order transaction
 * (orders/service.ts); this is the read side and the admin override. Also the per-account override of
 * the open-orders cap (MOONDRAFT_MAX_OPEN_ORDERS), enforced by the sequencer (orders/sequencer.ts).
 */
export class TradingLimits {
  constructor(private readonly deps: { store: Store; clock: Clock; orders: OrdersService; audit?: AuditLog | undefined }) {}

  /** `db`: a transaction, to read what it wrote (an admin change answers from its own transaction). */
  async status(accountId: string, role: Role, db: Kysely<Database> = this.deps.store.db): Promise<LimitStatus> {
    const [usage, exposure, override, openOrders] = await Promise.all([
      db.selectFrom('trading_usage').select('notional').where('account_id', '=', accountId).where('minute', '>=', firstWindowMinute(this.deps.clock.now())).execute(),
      db.selectFrom('trading_exposure').select('open_notional').where('account_id', '=', accountId).executeTakeFirst(),
      db.selectFrom('trading_limits').select('daily_notional').where('account_id', '=', accountId).executeTakeFirst(),
      this.openOrdersStatus(accountId, db),
    ]);
    const traded = usage.reduce((sum, u) => sum + readMinor(u.notional), 0n);
    const open = exposure ? readMinor(exposure.open_notional) : 0n;
    const limit = override ? readMinor(override.daily_notional) : this.deps.orders.roleLimit(role);
    const used = traded + open;
    return { limit, overridden: !!override, traded, open, remaining: limit > used ? limit - used : 0n, maxOpenOrders: openOrders.maxOpenOrders };
  }

  /** The account's open-orders cap per market: its admin override, else MOONDRAFT_MAX_OPEN_ORDERS. */
  async openOrdersStatus(accountId: string, db: Kysely<Database> = this.deps.store.db): Promise<OpenOrdersLimitStatus> {
    const row = await db.selectFrom('open_orders_limits').select('max_open_orders').where('account_id', '=', accountId).executeTakeFirst();
    const fallback = this.deps.orders.defaultMaxOpenOrders();
    return { maxOpenOrders: row ? Number(row.max_open_orders) : fallback, default: fallback, overridden: !!row };
  }

  /**
   * Sets (an integer 1..100000) or clears (null) an account's open-orders cap per market. Applies
   * to its next order; orders already resting stay when it is lowered below their number (only new
   * resting orders are refused). Audited as `admin.open_orders_limit.changed` in its transaction,
   * with the admin `by` as actor and the session it used, like the daily-limit override.
   */
  async setOpenOrdersOverride(
    account: AccountRef,
    maxOpenOrders: number | null,
    by: string,
    sessionId?: string,
    options: { byAdmin?: boolean } = {},
  ): Promise<Result<{ value: number | null; status: OpenOrdersLimitStatus }, 'validation_failed' | 'forbidden_role'>> {
    const parsed = parseMaxOpenOrders(maxOpenOrders);
    if (!parsed.ok) return parsed;
    const value = parsed.value;
    const now = this.deps.clock.now();
    return this.deps.store.transaction(async (trx): Promise<Result<{ value: number | null; status: OpenOrdersLimitStatus }, 'forbidden_role'>> => {
      // An account the admin prepares is created here (a write that fails or is refused leaves none
      // behind), under the account's lock, as setOverride does: two admins at once both record their
      // change. With `byAdmin`, `by` must still be an admin as committed (see lockAdminTarget).
      const accountId = await lockAdminTarget(this.deps.store, trx, account, options.byAdmin ? by : undefined);
      if (accountId === undefined) return fail('forbidden_role', NO_LONGER_ADMIN);
      const before = await trx.selectFrom('open_orders_limits').select('max_open_orders').where('account_id', '=', accountId).executeTakeFirst();
      const from = before ? Number(before.max_open_orders) : null;
      if (value === null) {
        await trx.deleteFrom('open_orders_limits').where('account_id', '=', accountId).execute();
      } else {
        await trx
          .insertInto('open_orders_limits')
          .values({ account_id: accountId, max_open_orders: value, updated_by: by, updated_at: now })
          .onConflict((oc) => oc.column('account_id').doUpdateSet({ max_open_orders: value, updated_by: by, updated_at: now }))
          .execute();
      }
      if (from !== value && this.deps.audit) {
        await this.deps.audit.recordIn(trx, { type: 'admin.open_orders_limit.changed', accountId, actorId: by, details: { from, to: value, ...(sessionId !== undefined ? { via: 'session', sessionId } : {}) } });
      }
      // The answer is what this transaction wrote: read after the commit, a failing read would
      // answer 500 for a change that took effect.
      return ok({ value, status: await this.openOrdersStatus(accountId, trx) });
    });
  }

  /**
   * Sets (a USDC decimal string) or clears (null) an account's override. Applies to its next order.
   * A change is audited (`admin.trading_limit.changed`, the admin `by` as actor, and the session it
   * used, as the other admin records name it) in its transaction.
   */
  async setOverride(
    account: AccountRef,
    dailyNotional: string | null,
    by: string,
    sessionId?: string,
    options: { byAdmin?: boolean } = {},
  ): Promise<Result<{ value: bigint | null; status: LimitStatus }, 'validation_failed' | 'forbidden_role'>> {
    const amount = parseDailyNotional(dailyNotional);
    if (!amount.ok) return amount;
    const value = amount.value;
    const now = this.deps.clock.now();
    const usdc = (v: bigint | null) => (v === null ? null : formatAmount(v, USDC_DECIMALS));
    return this.deps.store.transaction(async (trx): Promise<Result<{ value: bigint | null; status: LimitStatus }, 'forbidden_role'>> => {
      // An account the admin prepares is created here (a write that fails or is refused leaves none
      // behind). The override it replaces is read under the account's lock (PostgreSQL; SQLite
      // transactions run one at a time): two admins setting it at once would otherwise both read the
      // old value, and the later writer, finding "no change" against it, would leave its change
      // unrecorded (a raised limit the audit trail does not show). With `byAdmin`, `by` must still be
      // an admin as committed (see lockAdminTarget).
      const accountId = await lockAdminTarget(this.deps.store, trx, account, options.byAdmin ? by : undefined);
      if (accountId === undefined) return fail('forbidden_role', NO_LONGER_ADMIN);
      const before = await trx.selectFrom('trading_limits').select('daily_notional').where('account_id', '=', accountId).executeTakeFirst();
      const from = before ? readMinor(before.daily_notional) : null;
      if (value === null) {
        await trx.deleteFrom('trading_limits').where('account_id', '=', accountId).execute();
      } else {
        await trx
          .insertInto('trading_limits')
          .values({ account_id: accountId, daily_notional: value.toString(), updated_by: by, updated_at: now })
          .onConflict((oc) => oc.column('account_id').doUpdateSet({ daily_notional: value.toString(), updated_by: by, updated_at: now }))
          .execute();
      }
      if (from !== value && this.deps.audit) {
        await this.deps.audit.recordIn(trx, { type: 'admin.trading_limit.changed', accountId, actorId: by, details: { from: usdc(from), to: usdc(value), ...(sessionId !== undefined ? { via: 'session', sessionId } : {}) } });
      }
      // The answer is what this transaction wrote (the account's role as committed with it): read
      // after the commit, a failing read would answer 500 for a change that took effect.
      // (An override set for an id with no account row, as some callers outside HTTP do, answers the trader default.)
      const row = await trx.selectFrom('accounts').select('role').where('id', '=', accountId).executeTakeFirst();
      return ok({ value, status: await this.status(accountId, (row?.role ?? 'trader') as Role, trx) });
    });
  }
}
