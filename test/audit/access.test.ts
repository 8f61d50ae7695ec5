import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { accessViews, rows, scaleoutAvailable } from './support.js';

const scaleout = await scaleoutAvailable();
const BACKENDS = scaleout ? (['embedded', 'scaleout'] as const) : (['embedded'] as const);

describe('access events', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000' } });
  });
  afterAll(() => server.close());

  const accessRecords = async () => (await server.services.audit.list({ type: 'access.request' }, { limit: 100 })).records.reverse();

  it('records every API request with its route pattern, status, account and anonymized network', async () => {
    const s = await sessionFor(server);
    await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { ...s.headers, 'user-agent': 'probe/1.0' }, remoteAddress: '203.0.113.77' });
    await server.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '2001:db8:abcd:12::1' });
    await server.app.inject({ method: 'GET', url: '/api/v1/does-not-exist/secret-path?x=1' });
    await server.app.inject({ method: 'GET', url: '/health' });
    expect(server.services.audit.buffered).toBeGreaterThanOrEqual(3);
    await server.services.audit.settle();

    const [account, time, unmatched, ...rest] = await accessRecords();
    expect(rest).toEqual([]); // /health is not an API request
    expect(account).toMatchObject({
      category: 'access',
      accountId: s.account.id,
      outcome: 'success',
      ip: '203.0.113.0/24',
      userAgent: 'probe/1.0',
      details: { method: 'GET', route: '/api/v1/account', status: 200, sessionId: s.sessionId },
    });
    expect(typeof account!.details!.latencyMs).toBe('number');
    expect(typeof account!.details!.requestId).toBe('string');
    expect(time).toMatchObject({ accountId: null, ip: '2001:db8:abcd::/48', details: { route: '/api/v1/time', status: 200 } });
    expect(unmatched).toMatchObject({ outcome: 'failure', details: { route: 'unmatched', status: 404 } });
    expect(JSON.stringify(unmatched)).not.toContain('secret-path');
  });

  it('records refusals as denied', async () => {
    const developer = await sessionFor(server, { role: 'developer' });
    await server.app.inject({ method: 'GET', url: '/api/v1/audit/events', headers: developer.headers });
    await server.services.audit.settle();
    const last = (await accessRecords()).at(-1)!;
    expect(last).toMatchObject({ outcome: 'denied', accountId: developer.account.id, details: { route: '/api/v1/audit/events', status: 403 } });
  });

  it('bounds the buffer and records how many events it had to drop', async () => {
    const tiny = await startTestServer({ env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000', MOONDRAFT_AUDIT_BATCH_SIZE: '2', MOONDRAFT_AUDIT_BUFFER_CAPACITY: '2' } });
    try {
      for (let i = 0; i < 5; i++) tiny.services.audit.enqueue({ type: 'auth.failed', outcome: 'denied', details: { code: 'invalid_token' } });
      await tiny.services.audit.settle();
      const view = (await tiny.services.audit.list({ category: 'audit' }, { limit: 10 })).records;
      expect(view.filter((r) => r.type === 'audit.events_dropped').map((r) => r.details)).toEqual([{ dropped: 3 }]);
      expect((await rows(tiny)).filter((r) => r.type === 'auth.failed')).toHaveLength(2);
      expect(await tiny.services.audit.verify()).toMatchObject({ ok: true });
    } finally {
      await tiny.close();
    }
  });

  it('writes a full batch without waiting for the timer', async () => {
    const small = await startTestServer({ env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000', MOONDRAFT_AUDIT_BATCH_SIZE: '3' } });
    try {
      for (let i = 0; i < 3; i++) await small.app.inject({ method: 'GET', url: '/api/v1/time' });
      await expect.poll(async () => (await accessViews(small)).length).toBe(3);
    } finally {
      await small.close();
    }
  });
});

describe('access events of a flood', () => {
  let server: TestServer;
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  beforeAll(async () => {
    server = await startTestServer({ clock, env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000', MOONDRAFT_RL_PUBLIC_PER_IP: '2' } });
  });
  afterAll(() => server.close());
  const fromNetwork = async (network: string) => (await accessViews(server)).filter((v) => v.ip === network);
  const refusedFrom = async (network: string) => {
    const out = [];
    for await (const v of server.services.audit.export({ type: 'access.refused' })) if (v.ip === network) out.push(v.details);
    return out;
  };

  it('a blocked address writes no record per request: its refusals are counted, one record per network and window', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '198.51.100.9' } })).statusCode).toBe(201);
    for (let i = 0; i < 50; i++) {
      const r = await server.app.inject({ method: 'GET', url: i % 2 ? '/api/v1/time' : '/api/v1/nowhere', remoteAddress: '198.51.100.9' });
      expect(r.json().code).toBe('ip_blocked');
    }
    await server.services.audit.settle();
    expect(await fromNetwork('198.51.100.0/24')).toEqual([]);
    // Every refused request is still in the trail, as a count.
    expect(await refusedFrom('198.51.100.0/24')).toEqual([expect.objectContaining({ refusal: 'ip_blocked', status: 403, count: 50 })]);
    // The block itself is in the trail.
    expect((await server.services.audit.list({ type: 'admin.ip.blocked' }, { limit: 10 })).records.map((r) => r.details?.target)).toContain('198.51.100.9');
  });

  it('an anonymous flood past its ceiling writes the requests it was allowed, and a count of its 429s', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 50; i++) codes.push((await server.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '203.0.113.50' })).statusCode);
    expect(codes.filter((c) => c === 200)).toHaveLength(2);
    expect(codes.filter((c) => c === 429)).toHaveLength(48);
    await server.services.audit.settle();
    expect((await fromNetwork('203.0.113.0/24')).map((v) => v.details?.status)).toEqual([200, 200]);
    expect(await refusedFrom('203.0.113.0/24')).toEqual([expect.objectContaining({ refusal: 'rate_limited', status: 429, count: 48 })]);
  });
});

describe.each(BACKENDS)('buffered access events on %s', (backend) => {
  it('survive a graceful shutdown', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-audit-'));
    const isolation = newIsolation();
    const options = { backend, dataDir, sqliteFile: true, isolation } as const;
    try {
      const first = await startTestServer({ ...options, env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000', MOONDRAFT_AUDIT_BATCH_SIZE: '1000' } });
      for (let i = 0; i < 5; i++) await first.app.inject({ method: 'GET', url: '/api/v1/time' });
      expect(first.services.audit.buffered).toBe(5);
      expect(await accessViews(first)).toHaveLength(0);
      await first.close();

      const second = await startTestServer(options);
      try {
        expect(await accessViews(second)).toHaveLength(5);
        const view = (await second.services.audit.list({ type: 'access.request' }, { limit: 10 })).records;
        expect(view.every((r) => r.details?.route === '/api/v1/time' && r.readable)).toBe(true);
        expect(await second.services.audit.verify()).toMatchObject({ ok: true });
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
      if (backend === 'scaleout') await dropSchema(isolation.pgSchema);
    }
  });
});
