import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * Idempotent withdrawal requests: `client_withdrawal_id`, the client's own id for a request, unique
 * per account among the withdrawals that have one. A retry after a lost answer names the same id and
 * gets the original withdrawal back instead of a second one (funds held twice, sent twice).
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.alterTable('withdrawals').addColumn('client_withdrawal_id', 'text').execute();
    await db.schema
      .createIndex('withdrawals_client_id')
      .on('withdrawals')
      .columns(['account_id', 'client_withdrawal_id'])
      .unique()
      .where(sql.ref('client_withdrawal_id'), 'is not', null)
      .execute();
  };
}

export function down(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.dropIndex('withdrawals_client_id').ifExists().execute();
    await db.schema.alterTable('withdrawals').dropColumn('client_withdrawal_id').execute();
  };
}
