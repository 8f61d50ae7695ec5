import type { Kysely } from 'kysely';
import { moneyType, type Dialect } from '../db.js';

/**
 * Token launches and withdrawals (issue 7): launched tokens' metadata (the asset row itself lives
 * in `assets`), withdrawal requests, per-account withdrawal settings (verification tier, address
 * book) and the address book.
 */
export function up(dialect: Dialect) {
  const money = moneyType(dialect);
  return async (db: Kysely<any>) => {
    await db.schema
      .createTable('tokens')
      .addColumn('symbol', 'text', (c) => c.primaryKey().references('assets.symbol'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('chain', 'text', (c) => c.notNull())
      .addColumn('supply', money, (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('website', 'text')
      .addColumn('image_url', 'text')
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('tokens_creator').on('tokens').columns(['created_by', 'created_at']).execute();

    await db.schema
      .createTable('withdrawal_settings')
      .addColumn('account_id', 'text', (c) => c.primaryKey())
      .addColumn('tier', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('tier_set_by', 'text')
      .addColumn('address_book', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('address_book_off_at', 'bigint')
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('withdrawal_addresses')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('chain', 'text', (c) => c.notNull())
      .addColumn('address', 'text', (c) => c.notNull())
      .addColumn('label', 'text')
      .addColumn('usable_at', 'bigint', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('withdrawal_addresses_unique').on('withdrawal_addresses').columns(['account_id', 'chain', 'address']).unique().execute();

    await db.schema
      .createTable('withdrawals')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('asset', 'text', (c) => c.notNull())
      .addColumn('amount', money, (c) => c.notNull())
      .addColumn('usdc_value', money, (c) => c.notNull())
      .addColumn('chain', 'text', (c) => c.notNull())
      .addColumn('address', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('tx_hash', 'text')
      .addColumn('reason', 'text')
      .addColumn('decided_by', 'text')
      .addColumn('dispatching_at', 'bigint')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('withdrawals_account').on('withdrawals').columns(['account_id', 'created_at']).execute();
    await db.schema.createIndex('withdrawals_status').on('withdrawals').columns(['status', 'created_at']).execute();
  };
}

export function down() {
  return async (db: Kysely<any>) => {
    for (const t of ['withdrawals', 'withdrawal_addresses', 'withdrawal_settings', 'tokens']) await db.schema.dropTable(t).ifExists().execute();
  };
}
