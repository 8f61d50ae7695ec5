import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Role } from '../../src/security/rbac/roles.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { resetAuditLog, rows, scaleoutAvailable } from './support.js';

const scaleout = await scaleoutAvailable();
const BACKENDS = scaleout ? (['embedded', 'scaleout'] as const) : (['embedded'] as const);
const ROUTES = ['/api/v1/audit/events', '/api/v1/audit/export', '/api/v1/audit/verify'];

describe.each(BACKENDS)('audit routes on %s', (backend) => {
  let server: TestServer;
  let auditor: Awaited<ReturnType<typeof sessionFor>>;
  beforeAll(async () => {
    // A long flush interval: the tests decide when buffered access events are written.
    server = await startTestServer({ backend, env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000' } });
  });
  afterAll(() => server.close());
  beforeEach(async () => {
    auditor = await sessionFor(server, { role: 'auditor' });
    await resetAuditLog(server);
  });

  const get = (url: string, headers = auditor.headers) => server.app.inject({ method: 'GET', url, headers });

  it.each(['admin', 'trader', 'developer'] satisfies Role[])('refuses the %s role with 403 forbidden_role on every audit route', async (role) => {
    const s = await sessionFor(server, { role });
    for (const url of ROUTES) {
      const res = await get(url, s.headers);
      expect(res.statusCode, url).toBe(403);
      expect(res.json().code).toBe('forbidden_role');
    }
  });

  it('refuses anonymous callers with 401 unauthenticated', async () => {
    for (const url of ROUTES) {
      const res = await server.app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(401);
      expect(res.json().code).toBe('unauthenticated');
    }
  });

  it('refuses an account demoted from auditor at its very next request', async () => {
    expect((await get('/api/v1/audit/verify')).statusCode).toBe(200);
    await server.services.accounts.setRole(auditor.account.wallet, 'trader', 'test');
    expect((await get('/api/v1/audit/verify')).json().code).toBe('forbidden_role');
  });

  it('lists events newest first with filters and cursor pagination', async () => {
    const audit = server.services.audit;
    const t0 = server.services.clock.now();
    for (let i = 0; i < 5; i++) await audit.record({ type: 'admin.limits.changed', at: t0 + i, accountId: 'acc_a', actorId: 'acc_admin', details: { limits: { market: i } } });
    await audit.record({ type: 'trading.faucet', at: t0 + 10, accountId: 'acc_b', details: { asset: 'USD', amount: '100' } });

    const page1 = (await get('/api/v1/audit/events?type=admin.limits.changed&limit=2')).json();
    expect(page1.events.map((e: any) => e.details.limits.market)).toEqual([4, 3]);
    expect(page1.events[0]).toMatchObject({ type: 'admin.limits.changed', category: 'admin', accountId: 'acc_a', actorId: 'acc_admin', outcome: 'success', readable: true });
    const page2 = (await get(`/api/v1/audit/events?type=admin.limits.changed&limit=2&cursor=${page1.nextCursor}`)).json();
    expect(page2.events.map((e: any) => e.details.limits.market)).toEqual([2, 1]);
    const page3 = (await get(`/api/v1/audit/events?type=admin.limits.changed&limit=2&cursor=${page2.nextCursor}`)).json();
    expect(page3.events.map((e: any) => e.details.limits.market)).toEqual([0]);
    expect(page3.nextCursor).toBeNull();

    const byAccount = (await get('/api/v1/audit/events?account=acc_b')).json();
    expect(byAccount.events.map((e: any) => e.type)).toEqual(['trading.faucet']);
    const byActor = (await get('/api/v1/audit/events?account=acc_admin')).json();
    expect(byActor.events).toHaveLength(5);
    const byTime = (await get(`/api/v1/audit/events?type=admin.limits.changed&from=${t0 + 1}&to=${t0 + 3}`)).json();
    expect(byTime.events.map((e: any) => e.at)).toEqual([t0 + 2, t0 + 1]);
    const byCategory = (await get('/api/v1/audit/events?category=trading')).json();
    expect(byCategory.events.map((e: any) => e.type)).toEqual(['trading.faucet']);
  });

  it('finds events by wallet address as well as account id', async () => {
    const trader = await sessionFor(server);
    await server.services.audit.record({ type: 'trading.faucet', accountId: trader.account.id, details: { asset: 'USD', amount: '5' } });
    const res = (await get(`/api/v1/audit/events?account=${trader.account.wallet.toUpperCase().replace('0X', '0x')}&type=trading.faucet`)).json();
    expect(res.events.map((e: any) => e.accountId)).toEqual([trader.account.id]);
    expect((await get(`/api/v1/audit/events?account=0x${'9'.repeat(40)}`)).json().events).toEqual([]);
  });

  it('refuses bad filters and foreign cursors with validation_failed', async () => {
    for (const q of ['limit=0', 'limit=501', 'from=abc', 'category=nope', 'type=DROP%20TABLE', 'cursor=not-a-cursor', 'unknown=1']) {
      const res = await get(`/api/v1/audit/events?${q}`);
      expect(res.statusCode, q).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
  });

  it('refuses an account filter that is neither an account id nor a wallet address (a NUL byte is a store error on PostgreSQL)', async () => {
    for (const route of ['/api/v1/audit/events', '/api/v1/audit/export']) {
      for (const q of ['account=x%00y', 'account=%00', 'account=acc%27%20OR%201%3D1', 'account=%C3%A9']) {
        const res = await get(`${route}?${q}`);
        expect({ route, q, status: res.statusCode, code: res.json().code }).toEqual({ route, q, status: 400, code: 'validation_failed' });
      }
    }
  });

  it('exports matching events oldest first as NDJSON', async () => {
    for (let i = 0; i < 3; i++) await server.services.audit.record({ type: 'trading.faucet', accountId: 'acc_x', details: { asset: 'USD', amount: String(i) } });
    const res = await get('/api/v1/audit/export?type=trading.faucet');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = res.body.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.details.amount)).toEqual(['0', '1', '2']);
    expect(lines[0]).toMatchObject({ type: 'trading.faucet', accountId: 'acc_x', category: 'trading' });
    expect(lines[1].prevHash).toBe(lines[0].hash);
  });

  it('verifies over HTTP and reports the first broken record', async () => {
    for (let i = 0; i < 4; i++) await server.services.audit.record({ type: 'trading.faucet', accountId: 'acc_v', details: { asset: 'USD', amount: '1' } });
    const good = (await get('/api/v1/audit/verify')).json();
    expect(good).toMatchObject({ ok: true, checked: 4 });
    expect(good.firstBroken).toBeUndefined();
    await server.services.store.db.deleteFrom('audit_events').where('seq', '=', 2).execute();
    const bad = (await get('/api/v1/audit/verify')).json();
    expect(bad).toMatchObject({ ok: false, firstBroken: { seq: 2, reason: 'removed' } });
  });

  it('records every read of the audit log, by whom and what', async () => {
    await get('/api/v1/audit/events?type=trading.faucet&limit=7');
    await get('/api/v1/audit/export?account=acc_q');
    await get('/api/v1/audit/verify');
    const reads = (await server.services.audit.list({ type: 'audit.read' }, { limit: 10 })).records.reverse();
    expect(reads.map((r) => r.details?.view)).toEqual(['events', 'export', 'verify']);
    for (const r of reads) expect(r.accountId).toBe(auditor.account.id);
    expect(reads[0]!.details).toMatchObject({ via: 'api', filters: { type: 'trading.faucet' }, returned: 0 });
    expect(reads[1]!.details).toMatchObject({ filters: { account: 'acc_q' } });
    expect(reads[2]!.details).toMatchObject({ result: 'ok' });
  });

  it('records security events: role changes and refused tokens', async () => {
    const s = await sessionFor(server);
    await server.services.accounts.setRole(s.account.wallet, 'developer', 'acc_theadmin');
    await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: 'Bearer a.b.c' } });
    await server.services.audit.settle(); // auth.failed is buffered (attackers can trigger it at will)
    const all = (await rows(server)).map((r) => r.type);
    expect(all).toContain('admin.role.changed');
    expect(all).toContain('auth.failed');
    const change = (await server.services.audit.list({ type: 'admin.role.changed', accountId: s.account.id }, { limit: 1 })).records[0]!;
    expect(change).toMatchObject({ accountId: s.account.id, actorId: 'acc_theadmin', details: { from: 'trader', to: 'developer', by: 'acc_theadmin' } });
    const failed = (await server.services.audit.list({ type: 'auth.failed' }, { limit: 1 })).records[0]!;
    expect(failed).toMatchObject({ outcome: 'denied', details: { code: 'invalid_token' } });
  });

  it('skips security events already recorded in their own transaction', async () => {
    server.services.events.emit({ type: 'ip.blocked', at: server.services.clock.now(), target: '192.0.2.1', reason: 'abuse', audited: true });
    server.services.events.emit({ type: 'ip.blocked', at: server.services.clock.now(), target: '192.0.2.2', reason: 'abuse' });
    await server.services.audit.settle();
    const blocked = (await server.services.audit.list({ type: 'admin.ip.blocked' }, { limit: 10 })).records;
    expect(blocked.map((r) => r.details?.target)).toEqual(['192.0.2.2']);
  });

  it('documents the audit routes in OpenAPI', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const url of ROUTES) expect(doc.paths[url]?.get?.tags).toEqual(['audit']);
  });
});
