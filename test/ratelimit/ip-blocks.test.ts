import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Redis } from 'ioredis';
import { ManualClock } from '../../src/lib/clock.js';
import type { SecurityEvent } from '../../src/security/events/index.js';
import { StateUnavailableError } from '../../src/state/port.js';
import { RedisState } from '../../src/state/redis.js';
import { sessionFor } from '../support/auth.js';
import { dropSchema, emptySharedState, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { REDIS_URL, serviceAvailable } from '../support/services.js';

const scaleout = (await serviceAvailable('redis')) && (await serviceAvailable('postgres'));
const backends = (['embedded', 'scaleout'] as const).filter((b) => b === 'embedded' || scaleout);

type Res = { statusCode: number; headers: Record<string, unknown>; json(): any };

function expectProblem(res: Res, code: string, status: number) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ code, status });
}

describe.each(backends)('IP blocks and the DDoS guard (%s)', (backend) => {
  let server: TestServer;
  let admin: Awaited<ReturnType<typeof sessionFor>>;
  const events: SecurityEvent[] = [];
  beforeAll(async () => {
    server = await startTestServer({ backend });
    server.services.events.subscribe((e) => {
      events.push(e);
    });
    admin = await sessionFor(server, { role: 'admin' });
  });
  afterAll(() => server.close());

  const blocks = {
    add: (payload: object) => server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload }),
    list: async () => (await server.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', headers: admin.headers })).json().blocks as { target: string; source: string; reason: string; expiresAt: number | null }[],
    remove: (target: string) => server.app.inject({ method: 'DELETE', url: `/api/v1/admin/ip-blocks?target=${encodeURIComponent(target)}`, headers: admin.headers }),
  };
  const from = (remoteAddress: string, extra: Record<string, unknown> = {}) => server.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress, ...extra });

  it('an administrator blocks an address: 403 ip_blocked before anything else runs', async () => {
    const made = await blocks.add({ target: '198.51.100.7', reason: 'abuse report', durationSec: 60 });
    expect(made.statusCode).toBe(201);
    expect(made.json()).toMatchObject({ target: '198.51.100.7', reason: 'abuse report', source: 'manual', createdBy: admin.account.id });
    const refused = await from('198.51.100.7');
    expectProblem(refused, 'ip_blocked', 403);
    expect(refused.headers['x-request-id']).toBe(refused.json().requestId);
    expect(Number(refused.headers['x-api-server-time'])).toBeGreaterThan(0);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect((await from('198.51.100.8')).statusCode).toBe(200);

    // Before authentication (no token check, no auth.failed event) and before the body is read.
    const before = events.length;
    expectProblem(await server.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: '198.51.100.7', headers: { authorization: 'Bearer a.b.c' } }), 'ip_blocked', 403);
    expectProblem(
      await server.app.inject({ method: 'PUT', url: '/api/v1/admin/accounts/x/limits', remoteAddress: '198.51.100.7', headers: { 'content-type': 'application/json' }, payload: '{not json' }),
      'ip_blocked',
      403,
    );
    expect(events.slice(before).filter((e) => e.type === 'auth.failed')).toHaveLength(0);
    expect(events.some((e) => e.type === 'ip.blocked' && e.target === '198.51.100.7' && e.by === admin.account.id)).toBe(true);
    expect(await server.services.metrics.text()).toMatch(/moondraft_ip_blocked_requests_total [1-9]/);
  });

  it('a reason with control, bidirectional or invisible formatting characters is refused and blocks nothing', async () => {
    // Admins read it in the list: the rule of every text people read. (A NUL byte also failed the
    // store's insert on PostgreSQL: a 500, where SQLite stored it.)
    for (const reason of ['x\u0000y', 'abuse\u202ereport', 'line\u0007bell']) {
      const res = await blocks.add({ target: '198.51.100.66', reason });
      expect({ reason, status: res.statusCode, code: res.json().code }).toEqual({ reason, status: 400, code: 'validation_failed' });
    }
    expect((await blocks.list()).find((b) => b.target === '198.51.100.66')).toBeUndefined();
    expect((await from('198.51.100.66')).statusCode).toBe(200);
    expect((await blocks.add({ target: '198.51.100.66', reason: '  spam wave\n(ticket 42)  ' })).json()).toMatchObject({ reason: 'spam wave\n(ticket 42)' });
    expect((await blocks.remove('198.51.100.66')).statusCode).toBe(204);
  });

  it('a blocked address is refused with ip_blocked even on a path the router cannot decode', async () => {
    expect((await blocks.add({ target: '198.51.100.9' })).statusCode).toBe(201);
    for (const url of ['/api/v1/market/orderbook/%E0%A4%A', `/api/v1/market/orderbook/${'x'.repeat(300)}`]) {
      expectProblem(await server.app.inject({ method: 'GET', url, remoteAddress: '198.51.100.9' }), 'ip_blocked', 403);
      expectProblem(await server.app.inject({ method: 'GET', url, remoteAddress: '198.51.100.10' }), 'validation_failed', 400);
    }
  });

  it('an administrator cannot block the address they are calling from (they could never lift it)', async () => {
    // app.inject comes from 127.0.0.1: the address of every client behind a local proxy not declared trusted.
    for (const target of ['127.0.0.1', '127.0.0.0/8', '127.0.0.1/32', '::ffff:127.0.0.1']) {
      const res = await blocks.add({ target });
      expectProblem(res, 'conflict', 409);
      expect(res.json().detail).toContain('127.0.0.1');
    }
    expect((await blocks.list()).some((b) => b.target.startsWith('127.'))).toBe(false);
    expect((await from('127.0.0.1')).statusCode).toBe(200);
    // From another address the same block is made, and lifted from there.
    const elsewhere = (method: 'POST' | 'DELETE', url: string, payload?: object) =>
      server.app.inject({ method, url, remoteAddress: '203.0.113.200', headers: admin.headers, ...(payload ? { payload } : {}) });
    expect((await elsewhere('POST', '/api/v1/admin/ip-blocks', { target: '127.0.0.1' })).statusCode).toBe(201);
    expectProblem(await from('127.0.0.1'), 'ip_blocked', 403);
    expect((await elsewhere('DELETE', '/api/v1/admin/ip-blocks?target=127.0.0.1')).statusCode).toBe(204);
    expect((await from('127.0.0.1')).statusCode).toBe(200);
    // A range beside the caller's is no concern.
    expect((await blocks.add({ target: '128.0.0.0/8' })).statusCode).toBe(201);
    expect((await blocks.remove('128.0.0.0/8')).statusCode).toBe(204);
  });

  it('blocks ranges, lists them canonically, and lifts them', async () => {
    expect((await blocks.add({ target: '192.0.2.99/24' })).json().target).toBe('192.0.2.0/24');
    expectProblem(await from('192.0.2.200'), 'ip_blocked', 403);
    expect((await blocks.list()).find((b) => b.target === '192.0.2.0/24')).toMatchObject({ source: 'manual', expiresAt: null });
    expect((await blocks.remove('192.0.2.0/24')).statusCode).toBe(204);
    expect((await from('192.0.2.200')).statusCode).toBe(200);
    expectProblem(await blocks.remove('192.0.2.0/24'), 'not_found', 404);
    expect(events.some((e) => e.type === 'ip.unblocked' && e.target === '192.0.2.0/24')).toBe(true);
  });

  it('reads the block list from its index; walks the keyspace at most once a minute, which finds blocks missing from it', async () => {
    const clock = new ManualClock(Date.now());
    const own = await startTestServer({ backend, clock });
    const ownAdmin = await sessionFor(own, { role: 'admin' });
    const add = (target: string) => own.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: ownAdmin.headers, payload: { target } });
    const list = async () => ((await own.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', headers: ownAdmin.headers })).json().blocks as { target: string }[]).map((b) => b.target);
    const state = own.services.state;
    const walks = vi.spyOn(state, 'keys');
    try {
      // A block written by a version without the index (a rolling upgrade): its key only.
      const old = { target: '198.51.100.77', reason: 'old', source: 'manual', createdAt: clock.now(), expiresAt: null, createdBy: ownAdmin.account.id };
      await state.set('ipblock:198.51.100.77', JSON.stringify(old));
      for (let i = 0; i < 3; i++) expect((await add(`192.0.2.${60 + i}`)).statusCode).toBe(201);
      expect(await list()).toEqual(expect.arrayContaining(['192.0.2.60', '192.0.2.61', '192.0.2.62']));
      // Under a flood every new block makes every process re-read the list: never a keyspace walk.
      expect(walks).not.toHaveBeenCalled();
      expect(await list()).not.toContain('198.51.100.77');
      clock.advance(60_000);
      expect(await list()).toContain('198.51.100.77');
      expect(await list()).toContain('198.51.100.77');
      expect(walks).toHaveBeenCalledTimes(1);
    } finally {
      walks.mockRestore();
      await own.close();
    }
  });

  it('a block the store refuses to record changes nothing: not in force, not shared, and a lift it refuses keeps the block', async () => {
    const target = '198.51.100.33';
    const store = server.services.store;
    const failing = vi.spyOn(store, 'transaction').mockRejectedValueOnce(new Error('test: the database is away'));
    try {
      expectProblem(await blocks.add({ target }), 'internal_error', 500);
    } finally {
      failing.mockRestore();
    }
    expect(await server.services.state.get(`ipblock:${target}`)).toBeNull();
    expect((await blocks.list()).find((b) => b.target === target)).toBeUndefined();
    expect((await from(target)).statusCode).toBe(200);

    expect((await blocks.add({ target })).statusCode).toBe(201);
    const failingLift = vi.spyOn(store, 'transaction').mockRejectedValueOnce(new Error('test: the database is away'));
    try {
      expectProblem(await blocks.remove(target), 'internal_error', 500);
    } finally {
      failingLift.mockRestore();
    }
    // Still stored, so still in force: lifted in shared state only, it would come back at the next restart.
    expect(await server.services.state.get(`ipblock:${target}`)).not.toBeNull();
    expect((await blocks.list()).find((b) => b.target === target)).toMatchObject({ source: 'manual' });
    expectProblem(await from(target), 'ip_blocked', 403);
    expect((await blocks.remove(target)).statusCode).toBe(204);
    expect((await from(target)).statusCode).toBe(200);
  });

  it('a block whose shared-state write fails is answered, enforced here at once, listed, and shared by the next sync', async () => {
    const target = '198.51.100.34';
    const state = server.services.state;
    // Shared state fails after the store row and its audit record committed: before, the answer
    // was 503 and the block was stored and audited but enforced nowhere (not even here) and
    // missing from the list until a restart; the retry it invited added a second audit record.
    const set = state.set.bind(state);
    let failed = 0;
    const failing = vi.spyOn(state, 'set').mockImplementation(async (key, ...rest) => {
      if (key === `ipblock:${target}` && failed++ === 0) throw new StateUnavailableError('test: shared state down');
      return set(key, ...rest);
    });
    let made;
    try {
      made = await blocks.add({ target, reason: 'outage' });
      // Enforced by this process before shared state answers again.
      expectProblem(await from(target), 'ip_blocked', 403);
    } finally {
      failing.mockRestore();
    }
    expect(failed).toBe(1);
    expect(made.statusCode).toBe(201);
    expect(made.json()).toMatchObject({ target, source: 'manual' });
    // Shared state answers again: the next sync (the list forces one) writes it there.
    expect((await blocks.list()).find((b) => b.target === target)).toMatchObject({ source: 'manual', reason: 'outage' });
    expect(JSON.parse((await state.get(`ipblock:${target}`)) ?? 'null')).toMatchObject({ target, source: 'manual' });
    expectProblem(await from(target), 'ip_blocked', 403);
    const audited = (await server.services.audit.list({ type: 'admin.ip.blocked' }, { limit: 50 })).records.filter((r) => r.details?.target === target);
    expect(audited).toHaveLength(1);
    // Lifted, it stays lifted: the write-back does not put it back.
    expect((await blocks.remove(target)).statusCode).toBe(204);
    await blocks.list();
    expect(await state.get(`ipblock:${target}`)).toBeNull();
    expect((await from(target)).statusCode).toBe(200);
  });

  it('a lift whose shared-state removal fails is answered, lifted here at once, and removed from shared state by the next sync', async () => {
    const target = '198.51.100.35';
    const state = server.services.state;
    expect((await blocks.add({ target, reason: 'to lift' })).statusCode).toBe(201);
    expect(await state.get(`ipblock:${target}`)).not.toBeNull();
    // Shared state fails after the store row is deleted and the lift audited: before, the answer
    // was 503, the block stayed in shared state (so on every process) with no retry, and the
    // retry the 503 invited audited the lift a second time.
    const del = state.del.bind(state);
    let failed = 0;
    const failing = vi.spyOn(state, 'del').mockImplementation(async (key) => {
      if (key === `ipblock:${target}` && failed++ === 0) throw new StateUnavailableError('test: shared state down');
      return del(key);
    });
    let lifted;
    try {
      lifted = await blocks.remove(target);
      // Lifted by this process before shared state answers again.
      expect((await from(target)).statusCode).toBe(200);
    } finally {
      failing.mockRestore();
    }
    expect(failed).toBe(1);
    expect(lifted.statusCode).toBe(204);
    // Shared state answers again: the next sync (the list forces one) removes it there.
    expect((await blocks.list()).find((b) => b.target === target)).toBeUndefined();
    expect(await state.get(`ipblock:${target}`)).toBeNull();
    expect((await from(target)).statusCode).toBe(200);
    const audited = (await server.services.audit.list({ type: 'admin.ip.unblocked' }, { limit: 50 })).records.filter((r) => r.details?.target === target);
    expect(audited).toHaveLength(1);
  });

  it('validates block requests and keeps them to administrators', async () => {
    for (const payload of [{ target: 'example.com' }, { target: '0.0.0.0/0' }, { target: '10.0.0.1', durationSec: 0 }, { target: '10.0.0.1', extra: true }, {}]) {
      expectProblem(await blocks.add(payload), 'validation_failed', 400);
    }
    const trader = await sessionFor(server);
    expectProblem(await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: trader.headers, payload: { target: '10.0.0.1' } }), 'forbidden_role', 403);
    expectProblem(await server.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks' }), 'unauthenticated', 401);
  });

  it('blocks an address automatically after many failed authentications', async () => {
    const ip = '203.0.113.50';
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await server.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: ip, headers: { authorization: 'Bearer aaa.bbb.ccc' } })).statusCode);
    expect(statuses.every((s) => s === 401)).toBe(true);
    await vi.waitFor(async () => expectProblem(await from(ip), 'ip_blocked', 403));
    const auto = (await blocks.list()).find((b) => b.target === ip);
    expect(auto).toMatchObject({ source: 'auto', reason: 'auth_failures' });
    expect(auto!.expiresAt! - Date.now()).toBeGreaterThan(800_000); // MOONDRAFT_DDOS_BLOCK_SEC, 15 minutes
    expect(events.some((e) => e.type === 'ip.blocked' && e.target === ip && e.by === 'auto')).toBe(true);
  });

  it('an administrator lifting an automatic block also forgives the failures that caused it', async () => {
    const ip = '203.0.113.51';
    const fail = () => server.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: ip, headers: { authorization: 'Bearer aaa.bbb.ccc' } });
    for (let i = 0; i < 20; i++) await fail();
    await vi.waitFor(async () => expectProblem(await from(ip), 'ip_blocked', 403));
    expect((await blocks.remove(ip)).statusCode).toBe(204);
    expect((await from(ip)).statusCode).toBe(200);
    // One more mistake right after is one failure, not the twenty-first of a window still full.
    expectProblem(await fail(), 'invalid_token', 401);
    await new Promise((r) => setTimeout(r, 100));
    expect((await from(ip)).statusCode).toBe(200);
    expect((await blocks.list()).find((b) => b.target === ip)).toBeUndefined();
  });

  it('blocks an address automatically after many unauthenticated 4xx in a second (IPv6: its /64)', async () => {
    for (let i = 0; i < 30; i++) await server.app.inject({ method: 'GET', url: `/api/v1/nope/${i}`, remoteAddress: `2001:db8:42::${(i % 5) + 1}` });
    await vi.waitFor(async () => expectProblem(await from('2001:db8:42::ffff'), 'ip_blocked', 403));
    expect((await blocks.list()).find((b) => b.target === '2001:db8:42::/64')).toMatchObject({ source: 'auto', reason: 'client_errors' });
    expect((await from('2001:db8:43::1')).statusCode).toBe(200);
  });

  it('does not block an address for its authenticated traffic, however many keys or accounts share it', async () => {
    const ip = '203.0.113.60';
    const trader = await sessionFor(server);
    for (let i = 0; i < 40; i++) {
      // Authenticated refusals (here: not an admin) are the principal's, not the address's: they
      // spend its own account limit (25/s), then it meets 429s.
      const res = await server.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', remoteAddress: ip, headers: trader.headers });
      if (i < 25) expectProblem(res, 'forbidden_role', 403);
      else expectProblem(res, 'rate_limited', 429);
    }
    const many = await Promise.all(Array.from({ length: 30 }, () => sessionFor(server)));
    for (const s of many) expect((await server.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: ip, headers: s.headers })).statusCode).toBe(200);
    expect((await from(ip)).statusCode).toBe(200);
  });

  it('never blocks loopback automatically (an undeclared local proxy would take everyone down)', async () => {
    for (let i = 0; i < 40; i++) await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: 'Bearer aaa.bbb.ccc' } });
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/time' })).statusCode).toBe(200);
  });
});

describe.runIf(scaleout)('IP blocks across processes (two in-test servers, one Redis and schema)', () => {
  let a: TestServer;
  let b: TestServer;
  const isolation = newIsolation();
  beforeAll(async () => {
    a = await startTestServer({ backend: 'scaleout', isolation });
    b = await startTestServer({ backend: 'scaleout', isolation, dataDir: a.dataDir });
    await Promise.all([a.services.ipBlocks.ready, b.services.ipBlocks.ready]);
  });
  afterAll(async () => {
    await b.close();
    await a.close();
    await dropSchema(isolation.pgSchema); // shared isolation: the servers leave it in place
  });

  it('an automatic block on one process is enforced by the other at once', async () => {
    for (let i = 0; i < 20; i++) await a.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: '198.51.100.70', headers: { authorization: 'Bearer aaa.bbb.ccc' } });
    await vi.waitFor(() => expect(b.services.ipBlocks.check('198.51.100.70')).toMatchObject({ source: 'auto' }), { timeout: 1000, interval: 5 });
    expect((await b.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '198.51.100.70' })).statusCode).toBe(403);
  });

  it('an automatic block whose indexing failed (Redis gone between two calls) still reaches the other process', async () => {
    const ip = '198.51.100.90';
    const state = a.services.state;
    const indexAdd = state.indexAdd.bind(state);
    let failed = 0;
    state.indexAdd = async (key, member) => {
      if (member === ip && failed++ === 0) throw new StateUnavailableError('test: shared state gone after the block was written');
      return indexAdd(key, member);
    };
    try {
      for (let i = 0; i < 20; i++) await a.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: ip, headers: { authorization: 'Bearer aaa.bbb.ccc' } });
      await vi.waitFor(() => expect(a.services.ipBlocks.check(ip)).toMatchObject({ source: 'auto' }));
      // The first indexing failed; a background pass of the block list (on its own timer, slower
      // on a loaded machine) may index it again meanwhile, which the steps below check anyway.
      expect(failed).toBeGreaterThanOrEqual(1);
    } finally {
      state.indexAdd = indexAdd;
    }
    // Shared state answers again: each process's next poll (not forced: its version check first).
    const poll = (s: TestServer) => (s.services.ipBlocks as unknown as { sync(): Promise<void> }).sync();
    await poll(a);
    await poll(b);
    expect(b.services.ipBlocks.check(ip)).toMatchObject({ source: 'auto' });
    expect((await b.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: ip })).statusCode).toBe(403);
  });

  it('a block lifted while another process starts stays lifted', async () => {
    const admin = await sessionFor(a, { role: 'admin' });
    const target = '198.51.100.60';
    expect((await a.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target } })).statusCode).toBe(201);
    // A third process starts: it reads the stored blocks, and the block is lifted before its first sync.
    const get = RedisState.prototype.get;
    let armed = true;
    // The lift's status is checked after the start: an expect failing in here would only reject
    // this read, which the starting process's sync swallows.
    let lifted: number | undefined;
    RedisState.prototype.get = async function (this: RedisState, key: string) {
      if (armed && key === 'ipblocks:held' && this !== a.services.state && this !== b.services.state) {
        armed = false;
        lifted = (await a.app.inject({ method: 'DELETE', url: `/api/v1/admin/ip-blocks?target=${target}`, headers: admin.headers })).statusCode;
      }
      return get.call(this, key);
    };
    let c: TestServer | undefined;
    try {
      c = await startTestServer({ backend: 'scaleout', isolation, dataDir: a.dataDir });
      // Its next poll (forced here): the block it read before the lift must not come back.
      await c.services.ipBlocks.list();
      expect(c.services.ipBlocks.check(target)).toBeUndefined();
    } finally {
      RedisState.prototype.get = get;
      await c?.close();
    }
    expect(armed).toBe(false);
    expect(lifted).toBe(204);
    expect(await a.services.state.get(`ipblock:${target}`)).toBeNull();
    await a.services.ipBlocks.list();
    expect(a.services.ipBlocks.check(target)).toBeUndefined();
    expect((await a.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: target })).statusCode).toBe(200);
  });

  it('a lift whose shared-state removal failed stops being enforced by every process within a sync', async () => {
    const admin = await sessionFor(a, { role: 'admin' });
    const target = '198.51.100.61';
    expect((await a.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target } })).statusCode).toBe(201);
    await vi.waitFor(() => expect(b.services.ipBlocks.check(target)).toMatchObject({ source: 'manual' }));
    const state = a.services.state;
    const del = state.del.bind(state);
    let failed = 0;
    state.del = async (key) => {
      if (key === `ipblock:${target}` && failed++ === 0) throw new StateUnavailableError('test: shared state down');
      return del(key);
    };
    let lifted;
    try {
      lifted = await a.app.inject({ method: 'DELETE', url: `/api/v1/admin/ip-blocks?target=${target}`, headers: admin.headers });
    } finally {
      state.del = del;
    }
    expect(failed).toBe(1);
    expect(lifted.statusCode).toBe(204);
    expect(a.services.ipBlocks.check(target)).toBeUndefined();
    // The answering process's next sync removes it from shared state; the other's then lifts it.
    const poll = (s: TestServer) => (s.services.ipBlocks as unknown as { sync(): Promise<void> }).sync();
    await poll(a);
    await poll(b);
    expect(await a.services.state.get(`ipblock:${target}`)).toBeNull();
    for (const s of [a, b]) {
      expect(s.services.ipBlocks.check(target)).toBeUndefined();
      expect((await s.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: target })).statusCode).toBe(200);
    }
  });

  it('a block lifted by one process while another writes it back to shared state stays lifted', async () => {
    const admin = await sessionFor(a, { role: 'admin' });
    const target = '198.51.100.62';
    const state = a.services.state;
    const set = state.set.bind(state);
    let writes = 0;
    state.set = async (key, ...rest) => {
      if (key === `ipblock:${target}`) {
        writes++;
        // The add's own write fails: the block waits for the write-back of the next sync.
        if (writes === 1) throw new StateUnavailableError('test: shared state down');
        // The write-back has found the block in the store; the other process lifts it now, before
        // the write reaches shared state.
        if (writes === 2) expect((await b.app.inject({ method: 'DELETE', url: `/api/v1/admin/ip-blocks?target=${target}`, headers: admin.headers })).statusCode).toBe(204);
      }
      return set(key, ...rest);
    };
    try {
      expect((await a.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target } })).statusCode).toBe(201);
      expect(a.services.ipBlocks.check(target)).toMatchObject({ source: 'manual' });
      await a.services.ipBlocks.list();
    } finally {
      state.set = set;
    }
    expect(writes).toBeGreaterThanOrEqual(2);
    expect(await a.services.state.get('ipblock:' + target)).toBeNull();
    for (const s of [a, b]) await s.services.ipBlocks.list();
    for (const s of [a, b]) {
      expect(s.services.ipBlocks.check(target)).toBeUndefined();
      expect((await s.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: target })).statusCode).toBe(200);
    }
  });

  it('blocks stay in force when Redis restarts empty (administrator blocks come back from the store)', async () => {
    const admin = await sessionFor(a, { role: 'admin' });
    const made = await a.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '198.51.100.80' } });
    expect(made.statusCode).toBe(201);
    for (let i = 0; i < 20; i++) await a.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: '198.51.100.81', headers: { authorization: 'Bearer aaa.bbb.ccc' } });
    await vi.waitFor(() => expect(b.services.ipBlocks.check('198.51.100.81')).toMatchObject({ source: 'auto' }));
    await vi.waitFor(() => expect(b.services.ipBlocks.check('198.51.100.80')).toMatchObject({ source: 'manual' }));

    // What a restart without persistence (or a failover to an empty replica) leaves: nothing.
    await emptySharedState(isolation);

    // The next poll of each process (forced here) notices and puts the list back.
    for (const s of [a, b]) await s.services.ipBlocks.list();
    for (const s of [a, b]) {
      expect(s.services.ipBlocks.check('198.51.100.80')).toMatchObject({ source: 'manual' });
      expect(s.services.ipBlocks.check('198.51.100.81')).toMatchObject({ source: 'auto' });
      expect((await s.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '198.51.100.80' })).statusCode).toBe(403);
    }
    expect(await a.services.state.get('ipblock:198.51.100.80')).not.toBeNull();
    expect(await a.services.state.get('ipblock:198.51.100.81')).not.toBeNull();
  });

  it('blocks stay in force when Redis comes back from an older snapshot (its marker says it holds the list)', async () => {
    const admin = await sessionFor(a, { role: 'admin' });
    await Promise.all([a.services.ipBlocks.list(), b.services.ipBlocks.list()]);
    // What an RDB snapshot taken now holds of the block list: the marker, the index, the version.
    const redis = new Redis(REDIS_URL);
    try {
      const keys = await redis.keys(`${isolation.statePrefix}ipblock*`);
      const snapshot = await Promise.all(keys.map(async (k) => ({ key: k, dump: await redis.dumpBuffer(k), ttl: await redis.pttl(k) })));
      expect(snapshot.some((s) => s.key.endsWith('ipblocks:held'))).toBe(true);

      expect((await a.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '198.51.100.95' } })).statusCode).toBe(201);
      for (let i = 0; i < 20; i++) await a.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: '198.51.100.96', headers: { authorization: 'Bearer aaa.bbb.ccc' } });
      await vi.waitFor(() => expect(b.services.ipBlocks.check('198.51.100.96')).toMatchObject({ source: 'auto' }));
      await vi.waitFor(() => expect(b.services.ipBlocks.check('198.51.100.95')).toMatchObject({ source: 'manual' }));
      // Each process polls (every 2 s) before Redis goes down.
      for (const s of [a, b]) await s.services.ipBlocks.list();

      // Redis restarts from that snapshot: everything written since is gone, the marker is not.
      const now = await redis.keys(`${isolation.statePrefix}ipblock*`);
      if (now.length > 0) await redis.del(...now);
      for (const s of snapshot) if (s.dump) await redis.restore(s.key, s.ttl > 0 ? s.ttl : 0, s.dump, 'REPLACE');
    } finally {
      redis.disconnect();
    }

    for (const s of [a, b]) await s.services.ipBlocks.list();
    for (const s of [a, b]) {
      expect(s.services.ipBlocks.check('198.51.100.95')).toMatchObject({ source: 'manual' });
      expect(s.services.ipBlocks.check('198.51.100.96')).toMatchObject({ source: 'auto' });
      expect((await s.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '198.51.100.95' })).statusCode).toBe(403);
    }
    expect(await a.services.state.get('ipblock:198.51.100.95')).not.toBeNull();
    expect(await a.services.state.get('ipblock:198.51.100.96')).not.toBeNull();
  });

  it('blocks stay in force when Redis restarts empty and a process starting then marks it as holding the list first', async () => {
    for (let i = 0; i < 20; i++) await a.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: '198.51.100.97', headers: { authorization: 'Bearer aaa.bbb.ccc' } });
    await vi.waitFor(() => expect(b.services.ipBlocks.check('198.51.100.97')).toMatchObject({ source: 'auto' }));
    for (const s of [a, b]) await s.services.ipBlocks.list();
    await emptySharedState(isolation);
    // A process starting now syncs before the others poll: it writes back the administrator blocks
    // it read from the store (its mirror holds no automatic block) and sets the shared marker.
    await a.services.state.set('ipblocks:held', '1');
    for (const s of [a, b]) await s.services.ipBlocks.list();
    for (const s of [a, b]) expect(s.services.ipBlocks.check('198.51.100.97')).toMatchObject({ source: 'auto' });
    expect(await a.services.state.get('ipblock:198.51.100.97')).not.toBeNull();
  });

  it('administrator blocks stay in force when Redis restarts empty while the store cannot be read', async () => {
    const admin = await sessionFor(a, { role: 'admin' });
    const target = '198.51.100.85';
    expect((await a.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target } })).statusCode).toBe(201);
    await a.services.ipBlocks.list();
    expect(a.services.ipBlocks.check(target)).toMatchObject({ source: 'manual' });
    await emptySharedState(isolation);
    const db = a.services.store.db;
    const selectFrom = db.selectFrom;
    db.selectFrom = ((table: string) => {
      if (table === 'ip_blocks') throw new Error('test: the store is unreachable');
      return selectFrom.call(db, table as never);
    }) as typeof db.selectFrom;
    try {
      // The poll finds the list lost and cannot read the administrator blocks back: its mirror keeps them.
      await a.services.ipBlocks.list();
      expect(a.services.ipBlocks.check(target)).toMatchObject({ source: 'manual' });
      expect((await a.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: target })).statusCode).toBe(403);
    } finally {
      db.selectFrom = selectFrom;
    }
    // The store answers again: the next poll puts the list back in shared state.
    await a.services.ipBlocks.list();
    expect(a.services.ipBlocks.check(target)).toMatchObject({ source: 'manual' });
    expect(await a.services.state.get(`ipblock:${target}`)).not.toBeNull();
  });
});

describe('administrator blocks survive a restart (embedded, SQLite file)', () => {
  it('is still in force when the server starts again', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-ipb-'));
    try {
      const first = await startTestServer({ sqliteFile: true, dataDir });
      const admin = await sessionFor(first, { role: 'admin' });
      expect((await first.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '198.51.100.0/28' } })).statusCode).toBe(201);
      await first.close();
      const second = await startTestServer({ sqliteFile: true, dataDir });
      expect((await second.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '198.51.100.3' })).statusCode).toBe(403);
      expect((await second.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '198.51.100.16' })).statusCode).toBe(200);
      await second.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('behind a trusted proxy, the client is one address however the proxy spells it', () => {
  let server: TestServer;
  let admin: Awaited<ReturnType<typeof sessionFor>>;
  beforeAll(async () => {
    server = await startTestServer({ env: { MOONDRAFT_TRUSTED_PROXIES: '10.0.0.1' } });
    admin = await sessionFor(server, { role: 'admin' });
  });
  afterAll(() => server.close());
  const via = (forwarded: string, remoteAddress = '10.0.0.1') => server.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress, headers: { 'x-forwarded-for': forwarded } });

  it('an IPv4 block holds against every IPv4-mapped IPv6 spelling of the address', async () => {
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '192.0.2.1' } })).statusCode).toBe(201);
    for (const spelling of ['192.0.2.1', '::ffff:192.0.2.1', '0:0:0:0:0:ffff:192.0.2.1', '::ffff:c000:201', '::FFFF:C000:0201']) expectProblem(await via(spelling), 'ip_blocked', 403);
    // The client's own header counts only when a trusted proxy sent it.
    expect((await via('192.0.2.1', '198.51.100.1')).statusCode).toBe(200);
    // The right-most address the trusted proxy did not add itself is the client's.
    expect((await via('192.0.2.1, 198.51.100.1')).statusCode).toBe(200);
    expectProblem(await via('198.51.100.1, ::ffff:c000:201'), 'ip_blocked', 403);
  });

  it('a forwarded link-local address with a zone index is an address, not a crash', async () => {
    expect((await via('fe80::1%eth0')).statusCode).toBe(200);
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: 'fe80::1' } })).statusCode).toBe(201);
    expectProblem(await via('fe80::1%eth0'), 'ip_blocked', 403);
  });

  it('a forwarded address with a port or in brackets is that address (blocks hold, limits count it once)', async () => {
    // Some proxies (Azure Application Gateway, for one) append the client's address with its source port.
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '192.0.2.5' } })).statusCode).toBe(201);
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '2001:db8:5::/64' } })).statusCode).toBe(201);
    for (const spelling of ['192.0.2.5:51234', '[2001:db8:5::1]', '[2001:db8:5::2]:443', '198.51.100.1, 192.0.2.5:443']) expectProblem(await via(spelling), 'ip_blocked', 403);
    // A new source port per connection must not make a new client for the per-address ceilings.
    const statuses: number[] = [];
    for (let i = 0; i < 51; i++) statuses.push((await via(`203.0.113.77:${40_000 + i}`)).statusCode);
    expect(statuses.slice(0, 50).every((s) => s === 200)).toBe(true);
    expect(statuses[50]).toBe(429);
  });
});

describe('behind two trusted proxies, a hop written with a port is still the proxy', () => {
  it('reads past the inner proxy to the client, so blocks hold and the client is not taken for an exempt proxy', async () => {
    // Client → proxy 10.0.0.2 → proxy 10.0.0.1 (which appends its peer, some proxies with the
    // source port: Azure Application Gateway behind Front Door, say). A hop spelled with a port
    // was not recognised as trusted, so the walk stopped there: every client became 10.0.0.2, one
    // address for all, exempt (trusted proxies are) from the unauthenticated ceilings and blocks.
    const server = await startTestServer({ env: { MOONDRAFT_TRUSTED_PROXIES: '10.0.0.1,10.0.0.2' } });
    try {
      const admin = await sessionFor(server, { role: 'admin' });
      expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '192.0.2.9' } })).statusCode).toBe(201);
      const via = (forwarded: string) => server.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': forwarded } });
      for (const chain of ['192.0.2.9, 10.0.0.2', '192.0.2.9, 10.0.0.2:443', '192.0.2.9, [::ffff:10.0.0.2]:8443', '192.0.2.9:5000, 10.0.0.2:443']) expectProblem(await via(chain), 'ip_blocked', 403);
      // The per-address ceiling holds the client behind the port-spelled hop too.
      const statuses: number[] = [];
      for (let i = 0; i < 51; i++) statuses.push((await via(`203.0.113.78, 10.0.0.2:${40_000 + i}`)).statusCode);
      expect(statuses.slice(0, 50).every((s) => s === 200)).toBe(true);
      expect(statuses[50]).toBe(429);
    } finally {
      await server.close();
    }
  });
});

describe('exempt addresses and trusted proxies written as IPv4-mapped ranges', () => {
  it('are exempt as the IPv4 range they name, as the configuration checked them', async () => {
    // The configuration reads ::ffff:10.0.0.0/104 as 10.0.0.0/8 (and accepts it); the guard
    // dropped it, so the proxy was not exempt: every client's malformed HTTP counted against it,
    // and the proxy, all clients with it, could be blocked.
    const server = await startTestServer({ env: { MOONDRAFT_TRUSTED_PROXIES: '::ffff:10.0.0.0/104', MOONDRAFT_DDOS_EXEMPT: '::ffff:c633:6400/120' } });
    try {
      for (const ip of ['10.1.2.3', '::ffff:10.1.2.3', '198.51.100.7']) expect(server.services.ddosGuard.isExempt(ip), ip).toBe(true);
      for (const ip of ['11.1.2.3', '198.51.101.7']) expect(server.services.ddosGuard.isExempt(ip), ip).toBe(false);
    } finally {
      await server.close();
    }
  });
});

describe('the DDoS guard counts guessing, not stale credentials', () => {
  it('does not block an address whose failures are expired or revoked credentials', async () => {
    const server = await startTestServer();
    try {
      for (let i = 0; i < 25; i++) server.services.events.emit({ type: 'auth.failed', code: i % 2 ? 'token_expired' : 'token_revoked', at: Date.now(), ip: '203.0.113.90' });
      for (let i = 0; i < 25; i++) server.services.events.emit({ type: 'auth.failed', code: 'invalid_signature', at: Date.now(), ip: '203.0.113.91' });
      await vi.waitFor(() => expect(server.services.ipBlocks.check('203.0.113.91')).toMatchObject({ reason: 'auth_failures' }));
      expect(server.services.ipBlocks.check('203.0.113.90')).toBeUndefined();
    } finally {
      await server.close();
    }
  });
});

describe('the block list is paged', () => {
  it('answers at most 100 blocks by default (500 on request), newest first, with a cursor to the next page', async () => {
    // Under a flood the DDoS guard blocks thousands of addresses: the list answered them all in one
    // response, as large as the flood made it.
    const server = await startTestServer();
    try {
      const admin = await sessionFor(server, { role: 'admin' });
      const list = (query = '') => server.app.inject({ method: 'GET', url: `/api/v1/admin/ip-blocks${query}`, headers: admin.headers });
      for (let i = 0; i < 130; i++) await server.services.ipBlocks.autoBlock(`100.64.${Math.floor(i / 200)}.${(i % 200) + 1}`, 'client_errors', 600_000);
      const first = await list();
      expect(first.statusCode).toBe(200);
      const page1 = first.json() as { blocks: { target: string; createdAt: number }[]; next: string | null };
      expect(page1.blocks).toHaveLength(100);
      expect(page1.next).toEqual(expect.any(String));
      const page2 = (await list(`?before=${encodeURIComponent(page1.next!)}`)).json() as typeof page1;
      expect(page2.blocks).toHaveLength(30);
      expect(page2.next).toBeNull();
      const all = [...page1.blocks, ...page2.blocks];
      expect(new Set(all.map((b) => b.target)).size).toBe(130);
      for (let i = 1; i < all.length; i++) expect(all[i - 1]!.createdAt).toBeGreaterThanOrEqual(all[i]!.createdAt);
      expect((await list('?limit=500')).json().blocks).toHaveLength(130);
      const small = (await list('?limit=2')).json() as typeof page1;
      expect(small.blocks.map((b) => b.target)).toEqual(page1.blocks.slice(0, 2).map((b) => b.target));
      for (const q of ['?limit=0', '?limit=501', '?before=x', '?before=99999999999999999.1.2.3.4']) expectProblem(await list(q), 'validation_failed', 400);
    } finally {
      await server.close();
    }
  });
});
