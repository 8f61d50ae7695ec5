import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { AuditLog } from '../../src/audit/audit-log.js';
import { SecurityEvents } from '../../src/security/events/index.js';
import type { AuditEvent } from '../../src/audit/events.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { accessViews } from './support.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

const access = (i: number): AuditEvent => ({
  type: 'access.request',
  accountId: 'acc_load',
  outcome: 'success',
  ip: '203.0.113.0/24',
  userAgent: 'load/1.0',
  requestId: `req_load_${i}`,
  details: { method: 'GET', route: '/api/v1/account', status: 200, latencyMs: 0.4 },
});

/**
 * A batch of buffered events is written in chunks that give the event loop back to requests, but
 * never so that requests outrun the writer: with a backlog the write runs through and requests wait.
 */
/**
 * `store` whose first transaction is refused (a PostgreSQL connection dropped, say), after
 * `meanwhile` runs; `refused()` says how many were.
 */
function storeRefusingOnce<T extends object>(store: T, meanwhile: () => void = () => {}): { store: T; refused(): number } {
  let refused = 0;
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'transaction' && refused === 0) {
        return () => {
          refused += 1;
          meanwhile();
          return Promise.reject(new Error('connection terminated unexpectedly'));
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
  return { store: proxy, refused: () => refused };
}

/** `keyring` refusing to encrypt any plaintext holding POISON: an event the writer cannot seal. */
function refusingPoison<K extends { encrypt(plaintext: string | Buffer, aad: string): unknown; decrypt(blob: string, aad: string): unknown }>(keyring: K): K {
  return {
    encrypt: (plaintext: string | Buffer, aad: string) => {
      if (String(plaintext).includes('POISON')) throw new Error('cannot encrypt');
      return keyring.encrypt(plaintext, aad);
    },
    decrypt: (blob: string, aad: string) => keyring.decrypt(blob, aad),
  } as unknown as K;
}

describe('the audit writer under sustained load', () => {
  it('requests producing events faster than a yielding writer stores them never overflow the buffer', async () => {
    const s = server.services;
    const audit = new AuditLog({
      store: s.store,
      keyring: s.keyring,
      signingKeys: s.signingKeys,
      clock: s.clock,
      log: s.log,
      options: { ...s.config.audit, batchSize: 500, bufferCapacity: 1500, flushIntervalMs: 600_000 },
    });
    audit.start();
    try {
      // 100 "requests" per turn of the event loop: more than one chunk of 64 records per turn.
      let n = 0;
      let peak = 0;
      for (let turn = 0; turn < 40; turn++) {
        for (let k = 0; k < 100; k++) audit.enqueue(access(n++));
        peak = Math.max(peak, audit.buffered);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      await audit.settle();
      expect(peak).toBeLessThan(1500);
      const stored = await accessViews({ services: { ...s, audit } }, { accountId: 'acc_load' });
      expect(stored.map((v) => v.details?.requestId)).toEqual(Array.from({ length: n }, (_, i) => `req_load_${i}`));
      const dropped = await s.store.db.selectFrom('audit_events').select('id').where('type', '=', 'audit.events_dropped').execute();
      expect(dropped).toHaveLength(0);
      expect((await audit.verify()).ok).toBe(true);
    } finally {
      await audit.close();
    }
  });

  it('settle() waits for a batch already being written, not only for what is still buffered', async () => {
    const s = server.services;
    const audit = new AuditLog({ store: s.store, keyring: s.keyring, signingKeys: s.signingKeys, clock: s.clock, log: s.log, options: { ...s.config.audit, batchSize: 300, flushIntervalMs: 600_000 } });
    audit.start();
    try {
      // The 300th event starts a write (which gives way to other work as it goes); nothing stays buffered.
      for (let i = 0; i < 300; i++) audit.enqueue({ ...access(i), accountId: 'acc_settle' });
      await audit.settle();
      expect(await accessViews({ services: { ...s, audit } }, { accountId: 'acc_settle' })).toHaveLength(300);
    } finally {
      await audit.close();
    }
  });

  it('a security event whose own write fails is not lost: it goes to the buffer, which writes it with the next batch', async () => {
    const s = server.services;
    // The store refuses one transaction (a PostgreSQL connection dropped, say): the event's own write.
    const { store, refused: refusedCount } = storeRefusingOnce(s.store);
    const audit = new AuditLog({ store, keyring: s.keyring, signingKeys: s.signingKeys, clock: s.clock, log: s.log, options: { ...s.config.audit, flushIntervalMs: 600_000 } });
    const events = new SecurityEvents();
    const failures: unknown[] = [];
    events.onSubscriberError = (err) => failures.push(err);
    audit.subscribeTo(events);
    try {
      events.emit({ type: 'signing_keys.rotated', kid: 'kid-write-fails', at: s.clock.now() });
      await audit.settle();
      expect(refusedCount()).toBe(1);
      expect(failures).toEqual([]);
      const views = (await s.audit.list({ type: 'admin.signing_keys.rotated' }, { limit: 100 })).records;
      expect(views.map((v) => v.details?.kid)).toContain('kid-write-fails');
      expect((await audit.verify()).ok).toBe(true);
    } finally {
      await audit.close();
    }
  });

  it('moondraft_audit_dropped_total counts the events a failed batch loses when it no longer fits back, not only those refused on arrival', async () => {
    const s = server.services;
    const registry = new Registry();
    let audit: AuditLog | undefined;
    // The store is away for one write; meanwhile two more requests' events arrive and take the room.
    const { store } = storeRefusingOnce(s.store, () => {
      audit!.enqueue(access(1001));
      audit!.enqueue(access(1002));
    });
    audit = new AuditLog({ store, registry, keyring: s.keyring, signingKeys: s.signingKeys, clock: s.clock, log: s.log, options: { ...s.config.audit, batchSize: 100, bufferCapacity: 3, flushIntervalMs: 600_000 } });
    const droppedMetric = async () => (await registry.getSingleMetric('moondraft_audit_dropped_total')!.get()).values[0]?.value ?? 0;
    try {
      for (let i = 0; i < 4; i++) audit.enqueue(access(i));
      expect(await droppedMetric()).toBe(1);
      await expect(audit.flush()).rejects.toThrow('connection terminated');
      // One of the failed batch fits back in front of the two that arrived: two more are lost.
      expect(audit.buffered).toBe(3);
      expect(await droppedMetric()).toBe(3);
      await audit.settle();
      const dropped = (await s.store.db.selectFrom('audit_events').select('id').where('type', '=', 'audit.events_dropped').execute()).length;
      expect(dropped).toBeGreaterThan(0);
      expect(await droppedMetric()).toBe(3);
    } finally {
      await audit.close();
    }
  });

  it('close() waits for records still being written, and its last checkpoint covers them', async () => {
    const s = server.services;
    // The first transaction (the record's) is slow; the close's own work is not.
    let delayed = false;
    const store = new Proxy(s.store, {
      get(target, prop, receiver) {
        if (prop === 'transaction' && !delayed) {
          delayed = true;
          return async (fn: Parameters<typeof target.transaction>[0]) => {
            await new Promise((r) => setTimeout(r, 100));
            return target.transaction(fn);
          };
        }
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const audit = new AuditLog({ store, keyring: s.keyring, signingKeys: s.signingKeys, clock: s.clock, log: s.log, options: { ...s.config.audit, flushIntervalMs: 600_000 } });
    const written = audit.record({ type: 'admin.signing_keys.rotated', actorId: null, details: { kid: 'kid-written-at-close' } });
    await audit.close();
    const ref = await Promise.race([written, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 0))]);
    expect(ref).not.toBe('pending');
    const head = await s.store.db.selectFrom('audit_chain_head').select('seq').executeTakeFirstOrThrow();
    const last = await s.store.db.selectFrom('audit_checkpoints').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
    expect(Number(last.seq)).toBe(Number(head.seq));
  });

  it('an event that cannot be sealed is not lost without a trace: the batch records it as dropped', async () => {
    const s = server.services;
    // A keyring that refuses one plaintext: a malformed event the writer must skip, not retry forever.
    const keyring = refusingPoison(s.keyring);
    const audit = new AuditLog({ store: s.store, keyring, signingKeys: s.signingKeys, clock: s.clock, log: s.log, options: { ...s.config.audit, batchSize: 100, flushIntervalMs: 600_000 } });
    try {
      const before = await s.store.db.selectFrom('audit_events').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirst();
      const after = Number(before?.seq ?? 0);
      audit.enqueue({ type: 'auth.failed', outcome: 'denied', accountId: 'acc_poison', details: { code: 'POISON' } });
      audit.enqueue({ type: 'auth.failed', outcome: 'denied', accountId: 'acc_poison', details: { code: 'invalid_token' } });
      audit.enqueue({ ...access(0), accountId: 'acc_poison', userAgent: 'POISON/1.0' });
      await audit.settle();
      const written = await s.store.db.selectFrom('audit_events').selectAll().where('seq', '>', after).orderBy('seq').execute();
      expect(written.map((r) => r.type)).toEqual(['audit.events_dropped', 'auth.failed']);
      const views = (await s.audit.list({ type: 'audit.events_dropped' }, { limit: 1 })).records;
      expect(views[0]!.details).toMatchObject({ dropped: 2 });
      expect((await audit.verify()).ok).toBe(true);
    } finally {
      await audit.close();
    }
  });

  it('moondraft_audit_dropped_total counts the events that could not be sealed, once, as the trail records them', async () => {
    const s = server.services;
    const registry = new Registry();
    const keyring = refusingPoison(s.keyring);
    // The first write fails (the store briefly away): the batch is sealed again on the retry, and
    // its unsealable events must not be counted twice.
    const { store } = storeRefusingOnce(s.store);
    const audit = new AuditLog({ store, registry, keyring, signingKeys: s.signingKeys, clock: s.clock, log: s.log, options: { ...s.config.audit, batchSize: 100, flushIntervalMs: 600_000 } });
    const droppedMetric = async () => (await registry.getSingleMetric('moondraft_audit_dropped_total')!.get()).values[0]?.value ?? 0;
    try {
      audit.enqueue({ type: 'auth.failed', outcome: 'denied', accountId: 'acc_poison', details: { code: 'POISON' } });
      audit.enqueue({ type: 'auth.failed', outcome: 'denied', accountId: 'acc_poison', details: { code: 'invalid_token' } });
      audit.enqueue({ ...access(0), accountId: 'acc_poison', userAgent: 'POISON/1.0' });
      await expect(audit.flush()).rejects.toThrow('connection terminated');
      expect(await droppedMetric()).toBe(0);
      await audit.settle();
      const views = (await s.audit.list({ type: 'audit.events_dropped' }, { limit: 1 })).records;
      expect(views[0]!.details).toMatchObject({ dropped: 2, unsealable: 2 });
      expect(await droppedMetric()).toBe(2);
    } finally {
      await audit.close();
    }
  });

  it('moondraft_audit_records_total counts stored records, and says that one may hold a batch of access events', async () => {
    const s = server.services;
    const registry = new Registry();
    const audit = new AuditLog({ store: s.store, registry, keyring: s.keyring, signingKeys: s.signingKeys, clock: s.clock, log: s.log, options: { ...s.config.audit, batchSize: 100, flushIntervalMs: 600_000 } });
    try {
      for (let i = 0; i < 5; i++) audit.enqueue(access(2000 + i));
      await audit.settle();
      const metric = await registry.getSingleMetric('moondraft_audit_records_total')!.get();
      // Five access events, one stored record: the help text must not let an operator read it as events.
      expect(metric.values.reduce((n, v) => n + v.value, 0)).toBe(1);
      expect(metric.help).toMatch(/access\.batch/);
      expect(metric.help).toMatch(/not events|many access events/);
    } finally {
      await audit.close();
    }
  });
});
