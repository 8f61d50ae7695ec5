import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * Sign-in sessions and their refresh tokens (stored only as SHA-256 hashes). Spent refresh tokens
 * are kept for the life of their session so that presenting one again is recognised as reuse.
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema
      .createTable('sessions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
      .addColumn('chain', 'text', (c) => c.notNull())
      .addColumn('auth_time', 'bigint', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('last_used_at', 'bigint', (c) => c.notNull())
      .addColumn('ip', 'text', (c) => c.notNull())
      .addColumn('user_agent', 'text', (c) => c.notNull())
      .addColumn('refresh_expires_at', 'bigint', (c) => c.notNull())
      .addColumn('idle_expires_at', 'bigint', (c) => c.notNull())
      .addColumn('revoked_at', 'bigint')
      .addColumn('revoked_reason', 'text')
      .execute();
    await db.schema.createIndex('sessions_account_idx').on('sessions').column('account_id').execute();
    // The security sync asks for sessions revoked within the last token lifetime every few seconds.
    await db.schema.createIndex('sessions_revoked_at_idx').on('sessions').column('revoked_at').execute();
    await db.schema.createIndex('sessions_refresh_expires_idx').on('sessions').column('refresh_expires_at').execute();

    await db.schema
      .createTable('refresh_tokens')
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('spent_at', 'bigint')
      .execute();
    await db.schema.createIndex('refresh_tokens_session_idx').on('refresh_tokens').column('session_id').execute();

    // Role changes (by the API or the offline CLI) are found by the security sync through updated_at.
    await db.schema.createIndex('accounts_updated_at_idx').on('accounts').column('updated_at').execute();
  };
}
