import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/events.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { accessViews, resetAuditLog, rows } from './support.js';

/**
 * API access events are stored sealed in batches (one `access.batch` record per account and
 * written batch) and shown to auditors as one `access.request` view per request.
 */
describe('access events sealed in batches', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000' } });
  });
  afterAll(() => server.close());
  beforeEach(() => resetAuditLog(server));

  const access = (i: number, accountId: string | null, at: number, extra: Partial<AuditEvent> = {}): AuditEvent => ({
    type: 'access.request',
    at,
    accountId,
    outcome: i % 3 === 2 ? 'denied' : 'success',
    ip: '203.0.113.0/24',
    userAgent: `bot/${i}`,
    requestId: `req_${i}`,
    details: { method: 'GET', route: '/api/v1/account', status: i % 3 === 2 ? 403 : 200, latencyMs: i / 10, keyId: `key_${i % 2}` },
    ...extra,
  } as AuditEvent);

  it('stores one chained, encrypted record per account and batch, and shows every request', async () => {
    const audit = server.services.audit;
    const t0 = server.services.clock.now();
    for (let i = 0; i < 9; i++) audit.enqueue(access(i, i < 6 ? 'acc_one' : i < 8 ? 'acc_two' : null, t0 + i));
    audit.enqueue({ type: 'auth.failed', outcome: 'denied', details: { code: 'invalid_token' } });
    await audit.settle();

    const stored = await rows(server);
    const batches = stored.filter((r) => r.type === 'access.batch');
    expect(batches.map((r) => r.account_id).sort()).toEqual(['acc_one', 'acc_two', null].sort());
    expect(stored.filter((r) => r.type === 'auth.failed')).toHaveLength(1);
    expect(stored.filter((r) => r.type === 'access.request')).toHaveLength(0);
    // Nothing readable in the clear: the network, agents and request ids are inside the ciphertext.
    for (const r of batches) {
      expect(r.category).toBe('access');
      expect(r.ip_enc).toBeNull();
      expect(r.details_enc).not.toContain('203.0.113');
      expect(r.details_enc).not.toContain('bot/');
      expect(r.details_enc).not.toContain('req_');
    }
    const one = batches.find((r) => r.account_id === 'acc_one')!;
    expect(one.at).toBe(t0);
    expect(one.outcome).toBe('denied');

    const views = await accessViews(server, { accountId: 'acc_one' });
    expect(views.map((v) => v.details?.requestId)).toEqual(['req_0', 'req_1', 'req_2', 'req_3', 'req_4', 'req_5']);
    expect(views[2]).toMatchObject({
      id: `${one.id}.2`,
      seq: Number(one.seq),
      hash: one.hash,
      at: t0 + 2,
      type: 'access.request',
      category: 'access',
      accountId: 'acc_one',
      outcome: 'denied',
      ip: '203.0.113.0/24',
      userAgent: 'bot/2',
      readable: true,
      entry: 2,
      details: { method: 'GET', route: '/api/v1/account', status: 403, latencyMs: 0.2, keyId: 'key_0', requestId: 'req_2' },
    });
    expect(views[0]!.details).not.toHaveProperty('sessionId');
    expect((await accessViews(server)).filter((v) => v.accountId === null).map((v) => v.details?.requestId)).toEqual(['req_8']);
    expect(await audit.verify()).toMatchObject({ ok: true });
  });

  it('redacts a user agent that carries a credential, as per-request records did', async () => {
    const t0 = server.services.clock.now();
    server.services.audit.enqueue(access(0, 'acc_ua', t0, { userAgent: 'Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl' }));
    await server.services.audit.settle();
    const [view] = await accessViews(server, { accountId: 'acc_ua' });
    expect(view!.userAgent).toBe('[redacted]');
    expect(JSON.stringify(await rows(server))).not.toContain('eyJzdWIiOi');
  });

  it('pages through a batch with cursors: every request once, newest first, across records', async () => {
    const audit = server.services.audit;
    const t0 = server.services.clock.now();
    for (let i = 0; i < 5; i++) audit.enqueue(access(i, 'acc_page', t0 + i));
    await audit.settle();
    await audit.record({ type: 'admin.limits.changed', at: t0 + 10, accountId: 'acc_page', details: { limits: { market: 1 } } });
    for (let i = 5; i < 8; i++) audit.enqueue(access(i, 'acc_page', t0 + 20 + i));
    await audit.settle();

    const auditor = await sessionFor(server, { role: 'auditor' });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/api/v1/audit/events?account=acc_page&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await server.app.inject({ method: 'GET', url, headers: auditor.headers })).json();
      expect(page.events.length).toBeLessThanOrEqual(3);
      for (const e of page.events) seen.push(e.type === 'access.request' ? e.details.requestId : e.type);
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor !== null && pages < 10);
    expect(seen).toEqual(['req_7', 'req_6', 'req_5', 'admin.limits.changed', 'req_4', 'req_3', 'req_2', 'req_1', 'req_0']);
    expect(pages).toBe(3);
  });

  it('filters the requests inside a batch by time exactly', async () => {
    const audit = server.services.audit;
    const t0 = server.services.clock.now();
    for (let i = 0; i < 6; i++) audit.enqueue(access(i, 'acc_time', t0 + i * 1000));
    await audit.settle();
    const { records } = await audit.list({ type: 'access.request', accountId: 'acc_time', from: t0 + 2000, to: t0 + 4000 }, { limit: 10 });
    expect(records.map((r) => r.details?.requestId)).toEqual(['req_3', 'req_2']);
    const exported = [];
    for await (const v of audit.export({ accountId: 'acc_time', from: t0 + 4500 })) exported.push(v.details?.requestId);
    expect(exported).toEqual(['req_5']);
  });

  it('starts a new record rather than let one span more than a minute', async () => {
    const audit = server.services.audit;
    const t0 = server.services.clock.now();
    audit.enqueue(access(0, 'acc_span', t0));
    audit.enqueue(access(1, 'acc_span', t0 + 59_999));
    audit.enqueue(access(2, 'acc_span', t0 + 60_000));
    await audit.settle();
    const batches = (await rows(server)).filter((r) => r.type === 'access.batch');
    expect(batches.map((r) => Number(r.at))).toEqual([t0, t0 + 60_000]);
    // A range starting after a record's first entry still finds the later entries inside it.
    const { records } = await audit.list({ type: 'access.request', from: t0 + 30_000 }, { limit: 10 });
    expect(records.map((r) => r.details?.requestId)).toEqual(['req_2', 'req_1']);
  });

  it('a changed batch record breaks the chain and shows as unreadable, never as silently fewer requests', async () => {
    const audit = server.services.audit;
    const t0 = server.services.clock.now();
    for (let i = 0; i < 3; i++) audit.enqueue(access(i, 'acc_tamper', t0 + i));
    await audit.settle();
    const [batch] = (await rows(server)).filter((r) => r.type === 'access.batch');
    const other = (await rows(server)).length;
    expect(other).toBe(1);
    // Swap in a ciphertext of another record: it does not authenticate under this record's id.
    audit.enqueue(access(9, 'acc_other', t0 + 9));
    await audit.settle();
    const [foreign] = (await rows(server)).filter((r) => r.type === 'access.batch' && r.account_id === 'acc_other');
    await server.services.store.db.updateTable('audit_events').set({ details_enc: foreign!.details_enc }).where('id', '=', batch!.id).execute();

    const report = await audit.verify();
    expect(report.ok).toBe(false);
    expect(report.firstBroken).toMatchObject({ seq: Number(batch!.seq), reason: 'changed' });
    const views = await accessViews(server, { accountId: 'acc_tamper' });
    expect(views).toHaveLength(1);
    expect(views[0]).toMatchObject({ type: 'access.batch', readable: false, details: null });
  });
});
