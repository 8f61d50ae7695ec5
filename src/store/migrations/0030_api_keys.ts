import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * API keys. The key itself is stored only as its SHA-256 (lookup) plus a short display prefix; an
 * hmac secret only AES-256-GCM-encrypted under the master keyring with the row id as AAD; an
 * ed25519 key only as its public key. Scope, IP and country lists are JSON arrays in text.
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema
      .createTable('api_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('label', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('environment', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'text', (c) => c.notNull().unique())
      .addColumn('key_prefix', 'text', (c) => c.notNull())
      .addColumn('secret_enc', 'text')
      .addColumn('public_key', 'text')
      .addColumn('prev_secret_enc', 'text')
      .addColumn('prev_public_key', 'text')
      .addColumn('prev_valid_until', 'bigint')
      .addColumn('scopes', 'text', (c) => c.notNull())
      .addColumn('ip_whitelist', 'text', (c) => c.notNull())
      .addColumn('allowed_countries', 'text', (c) => c.notNull())
      .addColumn('lifetime_days', 'integer', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('revoked_at', 'bigint')
      .addColumn('suspended_at', 'bigint')
      .addColumn('suspended_reason', 'text')
      .addColumn('rotation_reminded_at', 'bigint')
      .addColumn('regenerated_at', 'bigint')
      .addColumn('last_used_at', 'bigint')
      .addColumn('last_signed_at', 'bigint')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('api_keys_account_idx').on('api_keys').column('account_id').execute();
    await db.schema.createIndex('api_keys_expires_idx').on('api_keys').column('expires_at').execute();
  };
}
