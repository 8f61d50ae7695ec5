import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * Per-account overrides of the open-orders cap (MOONDRAFT_MAX_OPEN_ORDERS, orders resting per
 * market), set by an admin (PUT /api/v1/admin/accounts/:address/open-orders-limit). A table of its
 * own beside trading_limits rather than a column there: a trading_limits row means "the daily
 * notional is overridden" (daily_notional is NOT NULL), and either override is cleared by deleting
 * its row without touching the other. Read by the order batch with the daily-limit override.
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema
      .createTable('open_orders_limits')
      .addColumn('account_id', 'text', (c) => c.primaryKey())
      .addColumn('max_open_orders', 'integer', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
  };
}

export function down(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.dropTable('open_orders_limits').ifExists().execute();
  };
}
