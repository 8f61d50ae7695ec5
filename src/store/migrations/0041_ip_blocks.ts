import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * Blocks made by an administrator, kept so they survive a restart of the server or of Redis
 * (automatic blocks are temporary and live in shared state only).
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema
      .createTable('ip_blocks')
      .addColumn('target', 'text', (c) => c.primaryKey())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint')
      .addColumn('created_by', 'text', (c) => c.notNull())
      .execute();
  };
}
