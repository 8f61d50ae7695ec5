import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * The token list's order, newest first and by symbol within a millisecond, as an index: each page
 * of `GET /api/v1/tokens` (and its `before` cursor) reads its rows in order from here, instead of
 * sorting the whole table for every page. A launch (a few a day per account) writes one more entry.
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.createIndex('tokens_newest').on('tokens').columns(['created_at desc', 'symbol']).execute();
  };
}

export function down(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.dropIndex('tokens_newest').ifExists().execute();
  };
}
