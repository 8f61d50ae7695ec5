import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/** Partner rate limits: per-account overrides of the API.md category limits (null = default). */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema
      .createTable('rate_limit_overrides')
      .addColumn('account_id', 'text', (c) => c.primaryKey().references('accounts.id').onDelete('cascade'))
      .addColumn('market', 'integer')
      .addColumn('trading', 'integer')
      .addColumn('account', 'integer')
      .addColumn('tokens', 'integer')
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .execute();
  };
}
