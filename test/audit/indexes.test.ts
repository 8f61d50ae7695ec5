import { CompiledQuery } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountFilter } from '../../src/audit/audit-log.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * The auditor's account filter must be answered from indexes, not a scan of the whole log, also
 * now that `audit_events_actor_seq` is partial (migration 0080). SQLite's planner is
 * deterministic, so the plan is checked there.
 */
describe('audit indexes on SQLite', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend: 'embedded' });
  });
  afterAll(() => server.close());

  it('answers the account filter from the account and actor indexes', async () => {
    const q = server.services.store.db
      .selectFrom('audit_events')
      .selectAll()
      .where((eb) => accountFilter(eb, 'acc_x'))
      .where('seq', '<=', 1000)
      .orderBy('seq', 'desc')
      .limit(51)
      .compile();
    const plan = await server.services.store.db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${q.sql}`, [...q.parameters]));
    const details = plan.rows.map((r) => r.detail).join('\n');
    expect(details).toMatch(/INDEX audit_events_account_seq/);
    expect(details).toMatch(/INDEX audit_events_actor_seq/);
    expect(details).not.toMatch(/SCAN audit_events(?! USING)/);
  });

  it('indexes by actor only records about another account, and still lists both kinds by account', async () => {
    const audit = server.services.audit;
    await audit.record({ type: 'trading.faucet', accountId: 'acc_self', actorId: 'acc_self', details: { asset: 'USD', amount: '1' } });
    await audit.record({ type: 'admin.limits.changed', accountId: 'acc_other', actorId: 'acc_self', details: { limits: { market: 1 } } });
    const index = await server.services.store.db.executeQuery<{ sql: string }>(CompiledQuery.raw(`select sql from sqlite_master where name = 'audit_events_actor_seq'`));
    expect(index.rows[0]!.sql).toMatch(/where "actor_id" is not null and "actor_id" is distinct from "account_id"/i);
    const listed = await audit.list({ accountId: 'acc_self' }, { limit: 10 });
    expect(listed.records.map((r) => r.type)).toEqual(['admin.limits.changed', 'trading.faucet']);
  });
});
