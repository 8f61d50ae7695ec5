import type { Kysely } from 'kysely';
import { moneyType, type Dialect } from '../db.js';

/**
 * Rows that concurrent order transactions may both touch (balances, holds, positions, usage,
 * exposure) carry a `version`: writes are multi-row upserts that only apply when the version is
 * the one read, so a lost race is detected without row-by-row updates.
 *
 * Trading core: assets and markets, the double-entry ledger (entries, postings, balances, holds),
 * orders and fills, positions, daily-limit usage, candles and faucet grants. USDC is seeded.
 */
export function up(dialect: Dialect) {
  const money = moneyType(dialect);
  return async (db: Kysely<any>) => {
    await db.schema
      .createTable('assets')
      .addColumn('symbol', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('decimals', 'integer', (c) => c.notNull())
      .addColumn('faucet', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_by', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('markets')
      .addColumn('symbol', 'text', (c) => c.primaryKey())
      .addColumn('base', 'text', (c) => c.notNull().references('assets.symbol'))
      .addColumn('quote', 'text', (c) => c.notNull().references('assets.symbol'))
      .addColumn('tick_size', money, (c) => c.notNull())
      .addColumn('lot_size', money, (c) => c.notNull())
      .addColumn('min_notional', money, (c) => c.notNull())
      .addColumn('maker_fee_bps', 'integer', (c) => c.notNull())
      .addColumn('taker_fee_bps', 'integer', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('seq', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('trade_seq', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('last_price', money)
      .addColumn('last_trade_at', 'bigint')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('ledger_entries')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('ref_id', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ledger_entries_ref').on('ledger_entries').columns(['ref_id']).execute();

    await db.schema
      .createTable('ledger_postings')
      .addColumn('entry_id', 'text', (c) => c.notNull())
      .addColumn('line', 'integer', (c) => c.notNull())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('asset', 'text', (c) => c.notNull())
      .addColumn('bucket', 'text', (c) => c.notNull())
      .addColumn('amount', money, (c) => c.notNull())
      .addPrimaryKeyConstraint('ledger_postings_pk', ['entry_id', 'line'])
      .execute();

    await db.schema
      .createTable('balances')
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('asset', 'text', (c) => c.notNull())
      .addColumn('available', money, (c) => c.notNull())
      .addColumn('held', money, (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('balances_pk', ['owner', 'asset'])
      .execute();

    await db.schema
      .createTable('holds')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('asset', 'text', (c) => c.notNull())
      .addColumn('amount', money, (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('holds_owner').on('holds').columns(['owner', 'asset', 'status']).execute();

    await db.schema
      .createTable('orders')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('market', 'text', (c) => c.notNull())
      .addColumn('side', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('time_in_force', 'text', (c) => c.notNull())
      .addColumn('stp', 'text', (c) => c.notNull())
      .addColumn('price', money)
      .addColumn('quantity', money, (c) => c.notNull())
      .addColumn('filled', money, (c) => c.notNull())
      .addColumn('remaining', money, (c) => c.notNull())
      .addColumn('notional', money, (c) => c.notNull())
      .addColumn('fees', money, (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('client_order_id', 'text')
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('actor_kind', 'text', (c) => c.notNull())
      .addColumn('actor_id', 'text', (c) => c.notNull())
      .addColumn('cancel_actor_kind', 'text')
      .addColumn('cancel_actor_id', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    // One order per (account, clientOrderId): a retry finds the original. NULLs are distinct.
    await db.schema.createIndex('orders_client_id').on('orders').columns(['account_id', 'client_order_id']).unique().execute();
    await db.schema.createIndex('orders_book').on('orders').columns(['market', 'status', 'seq']).execute();
    await db.schema.createIndex('orders_account').on('orders').columns(['account_id', 'id']).execute();

    await db.schema
      .createTable('fills')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('market', 'text', (c) => c.notNull())
      .addColumn('trade_seq', 'bigint', (c) => c.notNull())
      .addColumn('price', money, (c) => c.notNull())
      .addColumn('quantity', money, (c) => c.notNull())
      .addColumn('notional', money, (c) => c.notNull())
      .addColumn('taker_side', 'text', (c) => c.notNull())
      .addColumn('taker_order_id', 'text', (c) => c.notNull())
      .addColumn('maker_order_id', 'text', (c) => c.notNull())
      .addColumn('taker_account_id', 'text', (c) => c.notNull())
      .addColumn('maker_account_id', 'text', (c) => c.notNull())
      .addColumn('taker_fee', money, (c) => c.notNull())
      .addColumn('maker_fee', money, (c) => c.notNull())
      .addColumn('taker_actor_kind', 'text', (c) => c.notNull())
      .addColumn('taker_actor_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('fills_market_seq').on('fills').columns(['market', 'trade_seq']).unique().execute();
    await db.schema.createIndex('fills_taker').on('fills').columns(['taker_account_id', 'created_at']).execute();
    await db.schema.createIndex('fills_maker').on('fills').columns(['maker_account_id', 'created_at']).execute();
    await db.schema.createIndex('fills_taker_order').on('fills').columns(['taker_order_id']).execute();
    await db.schema.createIndex('fills_maker_order').on('fills').columns(['maker_order_id']).execute();

    await db.schema
      .createTable('positions')
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('asset', 'text', (c) => c.notNull())
      .addColumn('cost_basis', money, (c) => c.notNull())
      .addColumn('realized_pnl', money, (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('positions_pk', ['account_id', 'asset'])
      .execute();

    await db.schema
      .createTable('trading_usage')
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('minute', 'bigint', (c) => c.notNull())
      .addColumn('notional', money, (c) => c.notNull())
      .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('trading_usage_pk', ['account_id', 'minute'])
      .execute();

    await db.schema
      .createTable('trading_exposure')
      .addColumn('account_id', 'text', (c) => c.primaryKey())
      .addColumn('open_notional', money, (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
      .execute();

    await db.schema
      .createTable('trading_limits')
      .addColumn('account_id', 'text', (c) => c.primaryKey())
      .addColumn('daily_notional', money, (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('candles')
      .addColumn('market', 'text', (c) => c.notNull())
      .addColumn('period', 'text', (c) => c.notNull())
      .addColumn('start', 'bigint', (c) => c.notNull())
      .addColumn('open', money, (c) => c.notNull())
      .addColumn('high', money, (c) => c.notNull())
      .addColumn('low', money, (c) => c.notNull())
      .addColumn('close', money, (c) => c.notNull())
      .addColumn('volume', money, (c) => c.notNull())
      .addColumn('quote_volume', money, (c) => c.notNull())
      .addColumn('trades', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('candles_pk', ['market', 'period', 'start'])
      .execute();

    await db.schema
      .createTable('faucet_grants')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('asset', 'text', (c) => c.notNull())
      .addColumn('amount', money, (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('faucet_grants_account').on('faucet_grants').columns(['account_id', 'asset', 'created_at']).execute();

    const now = Date.now();
    await db.insertInto('assets').values({ symbol: 'USDC', name: 'USD Coin', decimals: 6, faucet: 1, created_by: null, created_at: now, updated_at: now }).execute();
  };
}
