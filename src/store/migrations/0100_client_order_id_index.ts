import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * The idempotency index by clientOrderId first: `orders_client_order_id` on (client_order_id,
 * account_id), only for orders that have one, replaces `orders_client_id` on (account_id,
 * client_order_id). Keyed by account first, every group commit wrote a leaf page per account that
 * placed an order. Keyed by the id first, ids that grow (counters, ULIDs, the UUIDv7 that the SDK
 * generates) are appended to the index's end: one or two pages a commit. Random ids cost a page an
 * order, as they did before with many accounts. Lookups are by both columns, so both orders serve
 * them; uniqueness per account is unchanged.
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema
      .createIndex('orders_client_order_id')
      .on('orders')
      .columns(['client_order_id', 'account_id'])
      .unique()
      .where(sql.ref('client_order_id'), 'is not', null)
      .execute();
    await db.schema.dropIndex('orders_client_id').ifExists().execute();
  };
}

export function down(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.createIndex('orders_client_id').on('orders').columns(['account_id', 'client_order_id']).unique().execute();
    await db.schema.dropIndex('orders_client_order_id').ifExists().execute();
  };
}
