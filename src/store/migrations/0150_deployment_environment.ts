import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../db.js';

/**
 * The environment (MOONDRAFT_ENV: sandbox or live) the store belongs to, in one row (id 1),
 * written by the first server or CLI command that starts on the store (a store from before this
 * migration gets the environment of its first start after the upgrade). Start-up refuses another
 * environment: a live store opened by a server that lost MOONDRAFT_ENV would otherwise run as a
 * sandbox on real accounts (the faucet minting test money into them), and a sandbox store opened
 * as live would take its test money for real. Left empty here: the migration does not know the
 * environment (see assertStoreEnvironment).
 */
export function up(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema
      .createTable('deployment_environment')
      .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
      .addColumn('env', 'text', (c) => c.notNull().check(sql`env in ('sandbox', 'live')`))
      .addColumn('recorded_at', 'bigint', (c) => c.notNull())
      .execute();
  };
}

export function down(_dialect: Dialect) {
  return async (db: Kysely<any>) => {
    await db.schema.dropTable('deployment_environment').ifExists().execute();
  };
}
