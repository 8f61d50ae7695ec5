import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * API keys by the time of their last change: every security sync pass (every few seconds, on every
 * process) re-announces the keys changed recently (see ApiKeys.republishChanged), a range read here
 * instead of a scan of every key. Changes are rare (create, edit, revoke, suspend, regenerate).
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.createIndex('api_keys_updated_idx').on('api_keys').column('updated_at').execute();
  };
}

export function down(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.dropIndex('api_keys_updated_idx').ifExists().execute();
  };
}
