import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditCursor, AuditFilter } from '../../src/audit/audit-log.js';
import type { AuditEvent } from '../../src/audit/events.js';
import { sessionFor } from '../support/auth.js';
import { prng } from '../support/prng.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { resetAuditLog, scaleoutAvailable } from './support.js';

const scaleout = await scaleoutAvailable();
const BACKENDS = scaleout ? (['embedded', 'scaleout'] as const) : (['embedded'] as const);
const ACCOUNTS = ['acc_p0', 'acc_p1', 'acc_p2', null] as const;

/**
 * Paging property: for any filter and limit, following nextCursor from the first page lists
 * exactly the views the export holds, newest first, each once (events inside stored access
 * batches included, pages ending anywhere inside a batch, many events sharing one timestamp).
 */
describe.each(BACKENDS)('audit paging on %s', (backend) => {
  let server: TestServer;
  let t0: number;
  beforeAll(async () => {
    server = await startTestServer({ backend, env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000' } });
    await resetAuditLog(server);
    const audit = server.services.audit;
    const rand = prng(7);
    t0 = server.services.clock.now() - 10_000;
    let n = 0;
    for (let round = 0; round < 12; round++) {
      const count = Math.floor(rand() * 30);
      for (let i = 0; i < count; i++) {
        const account = ACCOUNTS[Math.floor(rand() * ACCOUNTS.length)]!;
        // Few distinct times: many events share a timestamp.
        const at = t0 + Math.floor(rand() * 8) * 250;
        audit.enqueue({
          type: 'access.request',
          at,
          accountId: account,
          ip: '203.0.113.0/24',
          requestId: `req_${n++}`,
          details: { method: 'GET', route: '/api/v1/account', status: 200, latencyMs: 1 },
        } as AuditEvent);
      }
      await audit.settle();
      const others = Math.floor(rand() * 4);
      for (let i = 0; i < others; i++) {
        const account = ACCOUNTS[Math.floor(rand() * 3)]!;
        const actor = ACCOUNTS[Math.floor(rand() * 3)]!;
        await audit.record({ type: 'admin.limits.changed', at: t0 + Math.floor(rand() * 8) * 250, accountId: account, actorId: actor, details: { limits: { market: n++ } } });
      }
    }
  });
  afterAll(() => server.close());

  const key = (v: { id: string }) => v.id;

  it('lists every matching event once, newest first, whatever the limit and filters', async () => {
    const audit = server.services.audit;
    const rand = prng(11);
    for (let trial = 0; trial < 60; trial++) {
      const filter: AuditFilter = {};
      if (rand() < 0.4) filter.type = rand() < 0.7 ? 'access.request' : 'admin.limits.changed';
      if (rand() < 0.2) filter.category = rand() < 0.5 ? 'access' : 'admin';
      if (rand() < 0.4) filter.accountId = ACCOUNTS[Math.floor(rand() * 3)]!;
      if (rand() < 0.4) filter.from = t0 + Math.floor(rand() * 8) * 250;
      if (rand() < 0.4) filter.to = t0 + Math.floor(rand() * 9) * 250;
      const limit = 1 + Math.floor(rand() * 12);
      const all: string[] = [];
      for await (const v of audit.export(filter)) all.push(key(v));
      const expected = all.reverse();

      const seen: string[] = [];
      let cursor: AuditCursor | null | undefined;
      for (let pages = 0; pages < 1000; pages++) {
        const page = await audit.list(filter, { cursor: cursor ?? undefined, limit });
        expect(page.records.length).toBeLessThanOrEqual(limit);
        if (page.next !== null) expect(page.records.length).toBe(limit);
        seen.push(...page.records.map(key));
        cursor = page.next;
        if (cursor === null) break;
      }
      expect(cursor, JSON.stringify(filter)).toBeNull();
      expect(new Set(seen).size, JSON.stringify(filter)).toBe(seen.length);
      expect(seen, `${JSON.stringify(filter)} limit ${limit}`).toEqual(expected);
    }
  });

  it('pages over HTTP with the cursors it hands out', async () => {
    const auditor = await sessionFor(server, { role: 'auditor' });
    const expected: string[] = [];
    for await (const v of server.services.audit.export({ type: 'access.request', accountId: 'acc_p1' })) expected.push(v.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await server.app.inject({ method: 'GET', url: `/api/v1/audit/events?type=access.request&account=acc_p1&limit=7${cursor ? `&cursor=${cursor}` : ''}`, headers: auditor.headers });
      expect(res.statusCode).toBe(200);
      const page = res.json() as { events: { id: string }[]; nextCursor: string | null };
      seen.push(...page.events.map((e) => e.id));
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(seen).toEqual(expected.reverse());
  });

  it.each(['x', 'bnVsbA', 'eyJzZXEiOjAsInNraXAiOjB9', 'eyJzZXEiOjEsInNraXAiOi0xfQ', 'eyJzZXEiOiIxIiwic2tpcCI6MH0', '%00'])('refuses the malformed cursor %s with 400', async (cursor) => {
    const auditor = await sessionFor(server, { role: 'auditor' });
    const res = await server.app.inject({ method: 'GET', url: `/api/v1/audit/events?cursor=${cursor}`, headers: auditor.headers });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('validation_failed');
  });
});
