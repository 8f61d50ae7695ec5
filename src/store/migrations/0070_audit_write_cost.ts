import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * Cheaper audit appends: the index on `prev_hash` goes. Every append inserted a random 64-hex key
 * into it (a B-tree write at a random place, in the transaction of each order), and it served only
 * to name the successor of a broken link, which verification now finds by scanning, once, after a
 * break is already found.
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.dropIndex('audit_events_prev_hash').ifExists().execute();
  };
}

export function down(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.createIndex('audit_events_prev_hash').on('audit_events').columns(['prev_hash']).execute();
  };
}
