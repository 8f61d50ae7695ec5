import { InsertQueryNode, sql, type KyselyPlugin } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { dropSchema, newIsolation, startTestServer } from '../../test/support/server.js';
import { PG_URL, serviceAvailable } from '../../test/support/services.js';
import { openStore, type Store } from './db.js';
import { migrateTo, migrateToLatest } from './migrate.js';
import { migrations } from './migrations/index.js';

const postgres = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

describe.skipIf(!postgres)('migrations on PostgreSQL', () => {
  it('migrate a fresh schema while another schema of the database is already migrated', async () => {
    const other = newIsolation();
    const mine = newIsolation();
    const a = await startTestServer({ backend: 'scaleout', isolation: other });
    try {
      const b = await startTestServer({ backend: 'scaleout', isolation: mine });
      try {
        expect(await b.services.store.db.selectFrom('accounts').selectAll().execute()).toEqual([]);
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
      await dropSchema(other.pgSchema);
      await dropSchema(mine.pgSchema);
    }
  });
});

describe.skipIf(!postgres)('migrations beside other clients of the database', () => {
  it('are not disturbed by schemas another client creates and drops meanwhile', async () => {
    // Other deployments or test runs sharing the database come and go. Kysely's own introspection
    // looked up every schema by name and failed ("schema … does not exist") when one was dropped
    // between its catalog scan and that lookup.
    const churn = new pg.Client({ connectionString: PG_URL });
    await churn.connect();
    let stop = false;
    const churning = (async () => {
      for (let i = 0; !stop; i++) {
        const name = `t_churn_${process.pid}_${i}`;
        await churn.query(`create schema "${name}"; create table "${name}".x (id int)`);
        await churn.query(`drop schema "${name}" cascade`);
      }
    })();
    try {
      for (let round = 0; round < 6; round++) {
        const isolation = newIsolation();
        const store = await openStore({ databaseUrl: PG_URL, pgSchema: isolation.pgSchema, dataDir: '/tmp' });
        try {
          // Enough introspection passes (each migration checks its tables) to meet the churn.
          for (let pass = 0; pass < 5; pass++) await migrateToLatest(store);
        } finally {
          await store.close();
          await dropSchema(isolation.pgSchema);
        }
      }
    } finally {
      stop = true;
      await churning;
      await churn.end();
    }
  }, 120_000);
});

describe.skipIf(!postgres)('servers starting together on a fresh PostgreSQL schema', () => {
  it('all start: the schema is made by one, and found made by the others', async () => {
    // A scaled-out deployment starts its processes at once. CREATE SCHEMA IF NOT EXISTS is not safe
    // against a concurrent one: the loser failed with "duplicate key value violates unique
    // constraint pg_namespace_nspname_index", and with it the start of that process.
    for (let round = 0; round < 6; round++) {
      const { pgSchema } = newIsolation();
      try {
        const starts = await Promise.allSettled(
          Array.from({ length: 4 }, async () => {
            const store = await openStore({ databaseUrl: PG_URL, pgSchema, dataDir: '/tmp' });
            try {
              await migrateToLatest(store);
            } finally {
              await store.close();
            }
          }),
        );
        expect(starts.flatMap((s) => (s.status === 'rejected' ? [String((s.reason as Error).message)] : []))).toEqual([]);
      } finally {
        await dropSchema(pgSchema);
      }
    }
  }, 120_000);
});

/** Throws on the n-th insert into `table`: a stand-in for a crash part-way through a migration. */
function failOnInsert(table: string, n: number): KyselyPlugin {
  let seen = 0;
  return {
    transformQuery({ node }) {
      if (InsertQueryNode.is(node) && node.into?.table.identifier.name === table && ++seen === n) throw new Error('simulated crash');
      return node;
    },
    async transformResult({ result }) {
      return result;
    },
  };
}

describe('migrations on SQLite', () => {
  it('a database a newer version migrated is refused naming that, and left as it was (a rollback)', async () => {
    const store = await openStore({ dataDir: '/tmp', sqliteFile: ':memory:' });
    try {
      await migrateToLatest(store);
      // What the next release's first migration leaves behind, seen by this release.
      await sql`insert into kysely_migration (name, timestamp) values ('9990_from_a_newer_release', '2027-01-01T00:00:00.000Z')`.execute(store.db);
      const error = (await migrateToLatest(store).catch((e: unknown) => e)) as Error;
      expect(error.message).toMatch(/newer version of Moondraft.*9990_from_a_newer_release/);
      expect(error.message).not.toMatch(/\(unknown\)|corrupted/);
      const names = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(store.db);
      expect(names.rows.at(-1)?.name).toBe('9990_from_a_newer_release');
      expect(names.rows).toHaveLength(Object.keys(migrations('sqlite')).length + 1);
    } finally {
      await store.close();
    }
  });

  it('a migration that fails part-way leaves nothing behind, and the next start applies it whole', async () => {
    const store = await openStore({ dataDir: '/tmp', sqliteFile: ':memory:' });
    try {
      await migrateTo(store, '0080_index_write_cost');
      await store.db
        .insertInto('orders')
        .values({
          id: 'ord_01', account_id: 'acc_a', market: 'MOON-USDC', side: 'buy', type: 'limit', time_in_force: 'GTC', stp: 'cancel_maker', price: '1', quantity: '1', filled: '0', remaining: '1',
          notional: '0', fees: '0', status: 'open', reason: null, client_order_id: null, seq: 1, actor_kind: 'session', actor_id: 's', cancel_actor_kind: null, cancel_actor_id: null, created_at: 1, updated_at: 1,
        })
        .execute();
      // 0090 creates account_history and backfills it in three inserts; the third one fails.
      const crashing: Store = Object.assign(Object.create(store) as Store, { db: store.db.withPlugin(failOnInsert('account_history', 3)) });
      await expect(migrateToLatest(crashing)).rejects.toThrow(/0090_account_history failed: simulated crash/);
      const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(store.db);
      expect(tables.rows.map((r) => r.name)).not.toContain('account_history');
      expect(await migrateToLatest(store)).toEqual(['0090_account_history', '0100_client_order_id_index', '0110_tokens_newest_index', '0120_withdrawal_client_id', '0130_api_keys_changed_index', '0140_open_orders_limits', '0150_deployment_environment']);
      expect(await store.db.selectFrom('account_history').select(['account_id', 'kind', 'id']).execute()).toEqual([{ account_id: 'acc_a', kind: 'order', id: 'ord_01' }]);
    } finally {
      await store.close();
    }
  });
});
