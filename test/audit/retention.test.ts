import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { loadConfig } from '../../src/config/index.js';
import { ManualClock } from '../../src/lib/clock.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { accessViews, resetAuditLog, rows, scaleoutAvailable, seedEvents } from './support.js';

const DAY = 86_400_000;
const scaleout = await scaleoutAvailable();
const BACKENDS = scaleout ? (['embedded', 'scaleout'] as const) : (['embedded'] as const);

describe('retention configuration', () => {
  it('keeps two years by default and names the variable when invalid', () => {
    expect(loadConfig({}).audit.retentionDays).toBe(731);
    expect(loadConfig({ MOONDRAFT_AUDIT_RETENTION_DAYS: '90' }).audit.retentionDays).toBe(90);
    expect(() => loadConfig({ MOONDRAFT_AUDIT_RETENTION_DAYS: '0' })).toThrow(/^MOONDRAFT_AUDIT_RETENTION_DAYS: /);
    expect(() => loadConfig({ MOONDRAFT_AUDIT_BATCH_SIZE: '100', MOONDRAFT_AUDIT_BUFFER_CAPACITY: '10' })).toThrow(/^MOONDRAFT_AUDIT_BUFFER_CAPACITY: /);
  });
});

describe.each(BACKENDS)('retention purge on %s', (backend) => {
  let server: TestServer;
  const clock = new ManualClock();
  beforeAll(async () => {
    server = await startTestServer({ backend, clock });
  });
  afterAll(() => server.close());
  beforeEach(async () => {
    clock.set(Date.UTC(2026, 0, 1));
    await resetAuditLog(server);
  });

  it('removes records older than the retention period and the chain still verifies', async () => {
    await seedEvents(server, 5, 'acc_old');
    await server.services.audit.checkpoint();
    clock.advance(400 * DAY);
    await seedEvents(server, 3, 'acc_young');
    clock.advance(332 * DAY); // the first five are now 732 days old, the last three 332

    const result = await server.services.audit.purge();
    expect(result).toEqual({ removed: 5, throughSeq: 5 });
    const left = await rows(server);
    expect(left.map((r) => Number(r.seq))).toEqual([6, 7, 8, 9]);
    expect(left.at(-1)!.type).toBe('audit.purged');
    const anchors = await server.services.store.db.selectFrom('audit_checkpoints').selectAll().where('kind', '=', 'anchor').execute();
    expect(anchors.map((a) => Number(a.seq))).toEqual([5]);
    expect(left[0]!.prev_hash).toBe(anchors[0]!.hash);
    expect(await server.services.audit.verify()).toMatchObject({ ok: true, checked: 4 });

    expect(await server.services.audit.purge()).toEqual({ removed: 0, throughSeq: null }); // nothing more is old
  });

  it('keeps a record for two calendar years even when a leap day falls in them (730 days is a day short)', async () => {
    clock.set(Date.UTC(2027, 2, 1)); // 1 March 2027: its two years end on 1 March 2029, 731 days later (29 February 2028)
    await seedEvents(server, 1, 'acc_leap');
    clock.set(Date.UTC(2029, 1, 28, 12)); // 28 February 2029, noon: 730.5 days on, not yet two years
    await server.services.audit.purge();
    expect((await rows(server)).map((r) => r.type)).toContain('admin.limits.changed');
    clock.set(Date.UTC(2029, 2, 1) + 1); // two years and a millisecond: old now
    await server.services.audit.purge();
    expect((await rows(server)).map((r) => r.type)).not.toContain('admin.limits.changed');
  });

  it('still detects tampering after a purge, including removal of the first remaining record', async () => {
    await seedEvents(server, 3, 'acc_old');
    clock.advance(732 * DAY);
    await seedEvents(server, 3, 'acc_new');
    await server.services.audit.purge();
    await server.services.store.db.deleteFrom('audit_events').where('seq', '=', 4).execute();
    expect((await server.services.audit.verify()).firstBroken).toMatchObject({ seq: 4, reason: 'removed' });
  });

  it('detects records removed by hand as if purged (there is no signed anchor for them)', async () => {
    await seedEvents(server, 4);
    await server.services.store.db.deleteFrom('audit_events').where('seq', '<=', 2).execute();
    expect((await server.services.audit.verify()).firstBroken).toMatchObject({ seq: 1, reason: 'removed' });
  });

  it('removes only a prefix of the chain, so it stays contiguous', async () => {
    await seedEvents(server, 2, 'acc_old');
    await server.services.audit.record({ type: 'trading.faucet', at: clock.now() + 800 * DAY, details: { asset: 'USD', amount: '1' } });
    await seedEvents(server, 2, 'acc_old_again'); // old, but after a young record
    clock.advance(732 * DAY);
    expect(await server.services.audit.purge()).toEqual({ removed: 2, throughSeq: 2 });
    expect((await rows(server)).slice(0, 3).map((r) => Number(r.seq))).toEqual([3, 4, 5]);
    expect(await server.services.audit.verify()).toMatchObject({ ok: true });
  });

  it('never purges a record whose clear time was changed to look old: it stays, and verify reports it', async () => {
    await seedEvents(server, 4, 'acc_young');
    // An attacker with write access to the database (but not the signing key) backdates the first two.
    await server.services.store.db.updateTable('audit_events').set({ at: clock.now() - 1000 * DAY }).where('seq', '<=', 2).execute();
    expect(await server.services.audit.purge()).toEqual({ removed: 0, throughSeq: null });
    expect((await rows(server)).map((r) => Number(r.seq))).toEqual([1, 2, 3, 4]);
    expect((await server.services.audit.verify()).firstBroken).toMatchObject({ seq: 1, reason: 'changed' });
  });

  it('purges old intact records up to the first one that does not verify', async () => {
    await seedEvents(server, 3, 'acc_old');
    clock.advance(732 * DAY);
    await seedEvents(server, 1, 'acc_young');
    await server.services.store.db.updateTable('audit_events').set({ actor_id: 'acc_someone_else' }).where('seq', '=', 3).execute();
    expect(await server.services.audit.purge()).toEqual({ removed: 2, throughSeq: 2 });
    expect((await server.services.audit.verify()).firstBroken).toMatchObject({ seq: 3, reason: 'changed' });
  });

  it('keeps an access batch while any request in it is younger than the retention period', async () => {
    const t0 = clock.now();
    for (const [i, at] of [t0, t0 + 50_000].entries()) {
      server.services.audit.enqueue({ type: 'access.request', at, accountId: 'acc_span', requestId: `req_${i}`, details: { method: 'GET', route: '/api/v1/account', status: 200, latencyMs: 1 } });
    }
    await server.services.audit.settle();
    await seedEvents(server, 1, 'acc_young');
    clock.set(t0 + 731 * DAY + 10_000); // req_0 is now older than two years, req_1 forty seconds younger
    await server.services.audit.purge();
    expect((await accessViews(server, { accountId: 'acc_span' })).map((v) => v.details?.requestId)).toEqual(['req_0', 'req_1']);
    clock.set(t0 + 731 * DAY + 60_000); // both are old now
    await server.services.audit.purge();
    expect(await accessViews(server, { accountId: 'acc_span' })).toEqual([]);
    expect(await server.services.audit.verify()).toMatchObject({ ok: true });
  });

  it('purges everything when all is old, and the next record continues the chain', async () => {
    await seedEvents(server, 3);
    clock.advance(732 * DAY);
    await server.services.audit.purge(); // leaves only its own audit.purged record
    clock.advance(732 * DAY);
    await server.services.audit.purge();
    expect((await rows(server)).map((r) => r.type)).toEqual(['audit.purged']);
    await seedEvents(server, 1, 'acc_after');
    expect(await server.services.audit.verify()).toMatchObject({ ok: true, checked: 2 });
  });
});

describe('the scheduled retention job', () => {
  let server: TestServer;
  afterEach(async () => {
    vi.useRealTimers();
    await server?.close();
  });

  it('runs on its timer and purges by the clock', async () => {
    const clock = new ManualClock();
    server = await startTestServer({ clock });
    await seedEvents(server, 3);
    clock.advance(732 * DAY);
    await seedEvents(server, 1, 'acc_young');

    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    const s = server.services;
    const audit = new AuditLog({ store: s.store, keyring: s.keyring, signingKeys: s.signingKeys, clock, log: s.log, options: { ...s.config.audit, purgeIntervalMs: 60_000 } });
    audit.start();
    await vi.advanceTimersByTimeAsync(9_999);
    expect((await rows(server)).filter((r) => r.type === 'admin.limits.changed')).toHaveLength(4); // not yet
    await vi.advanceTimersByTimeAsync(1);
    await vi.waitFor(async () => expect((await rows(server)).map((r) => r.type)).toEqual(['admin.limits.changed', 'audit.purged']));

    clock.advance(732 * DAY);
    await vi.advanceTimersByTimeAsync(60_000); // the hourly run (here: every minute)
    await vi.waitFor(async () => expect((await rows(server)).map((r) => r.type)).toEqual(['audit.purged']));
    await audit.close();
    expect(await s.audit.verify()).toMatchObject({ ok: true });
  });
});

describe('verify while another process purges (SQLite file)', () => {
  it('reads one snapshot: records the other process purges meanwhile are not reported removed', async () => {
    const clock = new ManualClock();
    clock.set(Date.UTC(2026, 0, 1));
    // Two servers on one data dir, as `moondraft audit verify` beside a running server.
    const a = await startTestServer({ sqliteFile: true, clock });
    const b = await startTestServer({ sqliteFile: true, clock, dataDir: a.dataDir });
    // Each server's own retention job runs 10 s (real time) after its start, which a loaded machine
    // can reach while this test seeds: only the purge the test starts may run.
    const purgeB = b.services.audit.purge.bind(b.services.audit);
    for (const s of [a, b]) vi.spyOn(s.services.audit, 'purge').mockResolvedValue({ removed: 0, throughSeq: null });
    try {
      await resetAuditLog(a);
      await seedEvents(a, 3000, 'acc_old');
      clock.advance(732 * DAY);
      await seedEvents(a, 5, 'acc_young');
      // The other process purges just after verify has begun to read (its checkpoints first).
      const checkpoints = a.services.audit.checkpoints;
      const verifyAll = checkpoints.verifyAll.bind(checkpoints);
      let purged: unknown;
      vi.spyOn(checkpoints, 'verifyAll').mockImplementationOnce(async (db, now) => {
        const read = await verifyAll(db, now);
        purged = await purgeB();
        return read;
      });
      const report = await a.services.audit.verify();
      expect(purged).toEqual({ removed: 3000, throughSeq: 3000 });
      // What verify read is the chain before the purge, whole.
      expect(report).toMatchObject({ ok: true, checked: 3005 });
      expect(await a.services.audit.verify()).toMatchObject({ ok: true, checked: 6 });
    } finally {
      await b.close();
      await a.close();
    }
  }, 60_000);
});
