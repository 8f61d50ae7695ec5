import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/** The audit log: events (hash-chained), the chain head every append locks, signed checkpoints. */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema
      .createTable('audit_events')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('seq', 'bigint', (c) => c.notNull().unique())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('category', 'text', (c) => c.notNull())
      .addColumn('account_id', 'text')
      .addColumn('actor_id', 'text')
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('details_enc', 'text', (c) => c.notNull())
      .addColumn('ip_enc', 'text')
      .addColumn('user_agent_enc', 'text')
      .addColumn('prev_hash', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_events_at').on('audit_events').columns(['at']).execute();
    await db.schema.createIndex('audit_events_type_seq').on('audit_events').columns(['type', 'seq']).execute();
    await db.schema.createIndex('audit_events_category_seq').on('audit_events').columns(['category', 'seq']).execute();
    await db.schema.createIndex('audit_events_account_seq').on('audit_events').columns(['account_id', 'seq']).execute();
    await db.schema.createIndex('audit_events_actor_seq').on('audit_events').columns(['actor_id', 'seq']).execute();
    // Verification classifies a broken link by finding the record that links to a given hash.
    await db.schema.createIndex('audit_events_prev_hash').on('audit_events').columns(['prev_hash']).execute();

    await db.schema
      .createTable('audit_chain_head')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.insertInto('audit_chain_head').values({ id: 1, seq: 0, hash: '0'.repeat(64), updated_at: 0 }).execute();

    await db.schema
      .createTable('audit_checkpoints')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('kid', 'text', (c) => c.notNull())
      .addColumn('jws', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_checkpoints_seq').on('audit_checkpoints').columns(['seq']).execute();
    await db.schema.createIndex('audit_checkpoints_kind_seq').on('audit_checkpoints').columns(['kind', 'seq']).execute();

    await db.schema
      .createTable('audit_signing_keys')
      .addColumn('kid', 'text', (c) => c.primaryKey())
      .addColumn('jwk', 'text', (c) => c.notNull())
      .addColumn('jkt', 'text', (c) => c.notNull())
      .addColumn('first_used_at', 'bigint', (c) => c.notNull())
      .execute();
  };
}
