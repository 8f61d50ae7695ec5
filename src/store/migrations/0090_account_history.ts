import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * Order and fill history per account from one index instead of three. `orders_account`,
 * `fills_taker` and `fills_maker` each took a leaf-page write per account in every group commit of
 * orders (the largest part of a commit's cost, with the audit's account index); `account_history`
 * keys the same facts by (account, creation time), so an account's new order and its fills land on
 * one page. On SQLite it is a WITHOUT ROWID table: the primary key is the table. It also answers a
 * page of an account's fills in order (the two fill indexes were by time, not id, and the
 * query sorted all of an account's fills).
 *
 * Rows are backfilled from the existing orders and fills.
 */
export function up(dialect: Dialect) {
  return async (db: Kysely<any>) => {
    let table = db.schema
      .createTable('account_history')
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('sort_key', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('account_history_pk', ['account_id', 'sort_key', 'kind']);
    if (dialect === 'sqlite') table = table.modifyEnd(sql`without rowid`);
    await table.execute();

    const key = (column: string) => (dialect === 'sqlite' ? sql`substr(${sql.ref(column)}, instr(${sql.ref(column)}, '_') + 1)` : sql`substr(${sql.ref(column)}, strpos(${sql.ref(column)}, '_') + 1)`);
    await db
      .insertInto('account_history')
      .columns(['account_id', 'sort_key', 'kind', 'id'])
      .expression(db.selectFrom('orders').select([sql.ref('account_id').as('account_id'), key('id').as('sort_key'), sql.lit('order').as('kind'), 'id']))
      .execute();
    await db
      .insertInto('account_history')
      .columns(['account_id', 'sort_key', 'kind', 'id'])
      .expression(db.selectFrom('fills').select([sql.ref('taker_account_id').as('account_id'), key('id').as('sort_key'), sql.lit('taker').as('kind'), 'id']))
      .execute();
    await db
      .insertInto('account_history')
      .columns(['account_id', 'sort_key', 'kind', 'id'])
      .expression(db.selectFrom('fills').select([sql.ref('maker_account_id').as('account_id'), key('id').as('sort_key'), sql.lit('maker').as('kind'), 'id']).whereRef('maker_account_id', '<>', 'taker_account_id'))
      .execute();

    await db.schema.dropIndex('orders_account').ifExists().execute();
    await db.schema.dropIndex('fills_taker').ifExists().execute();
    await db.schema.dropIndex('fills_maker').ifExists().execute();
  };
}

export function down(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.createIndex('orders_account').on('orders').columns(['account_id', 'id']).execute();
    await db.schema.createIndex('fills_taker').on('fills').columns(['taker_account_id', 'created_at']).execute();
    await db.schema.createIndex('fills_maker').on('fills').columns(['maker_account_id', 'created_at']).execute();
    await db.schema.dropTable('account_history').execute();
  };
}
