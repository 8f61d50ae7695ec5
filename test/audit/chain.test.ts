import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { recordHash } from '../../src/audit/chain.js';
import { newIsolation, startTestServer, dropSchema, type TestServer } from '../support/server.js';
import { head, rehashFrom, resetAuditLog, rows, scaleoutAvailable, seedEvents } from './support.js';

const scaleout = await scaleoutAvailable();
// Without PostgreSQL and Redis the scale-out runs are skipped (serviceAvailable says so visibly).
const BACKENDS = scaleout ? (['embedded', 'scaleout'] as const) : (['embedded'] as const);

describe.each(BACKENDS)('audit chain on %s', (backend) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend });
  });
  afterAll(async () => {
    await server?.close();
  });
  beforeEach(() => resetAuditLog(server));

  const verify = () => server.services.audit.verify();
  const db = () => server.services.store.db;

  it('chains records with consecutive seqs and verifies them', async () => {
    await seedEvents(server, 6);
    const all = await rows(server);
    expect(all.map((r) => Number(r.seq))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(all[0]!.prev_hash).toBe('0'.repeat(64));
    for (let i = 1; i < all.length; i++) expect(all[i]!.prev_hash).toBe(all[i - 1]!.hash);
    expect((await head(server)).hash).toBe(all[5]!.hash);
    expect(await verify()).toMatchObject({ ok: true, checked: 6, headSeq: 6 });
  });

  it('detects a changed clear column', async () => {
    await seedEvents(server, 5);
    await db().updateTable('audit_events').set({ outcome: 'failure' }).where('seq', '=', 3).execute();
    const report = await verify();
    expect(report.ok).toBe(false);
    expect(report.firstBroken).toMatchObject({ seq: 3, reason: 'changed' });
  });

  it('detects a swapped ciphertext', async () => {
    await seedEvents(server, 5);
    const other = (await rows(server))[0]!;
    await db().updateTable('audit_events').set({ details_enc: other.details_enc }).where('seq', '=', 4).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 4, reason: 'changed' });
  });

  it('detects a record changed and re-hashed, at that record', async () => {
    await seedEvents(server, 5);
    const r = (await rows(server))[1]!;
    const forged = { ...r, seq: Number(r.seq), at: Number(r.at), account_id: 'acc_someone_else' };
    await db().updateTable('audit_events').set({ account_id: forged.account_id, hash: recordHash(forged) }).where('id', '=', r.id).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 2, id: r.id, reason: 'changed' });
  });

  it('detects a removed record in the middle, at the start and at the end', async () => {
    await seedEvents(server, 6);
    await db().deleteFrom('audit_events').where('seq', '=', 4).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 4, reason: 'removed' });

    await db().deleteFrom('audit_events').where('seq', '=', 1).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 1, reason: 'removed' });
  });

  it('detects the last record removed', async () => {
    await seedEvents(server, 4);
    await db().deleteFrom('audit_events').where('seq', '=', 4).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 4, reason: 'removed' });
  });

  it('detects two records swapped', async () => {
    await seedEvents(server, 6);
    await db().updateTable('audit_events').set({ seq: -1 }).where('seq', '=', 3).execute();
    await db().updateTable('audit_events').set({ seq: 3 }).where('seq', '=', 4).execute();
    await db().updateTable('audit_events').set({ seq: 4 }).where('seq', '=', -1).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 3, reason: 'reordered' });
  });

  it('detects a record moved to another position', async () => {
    await seedEvents(server, 6);
    await db().updateTable('audit_events').set({ seq: 100 }).where('seq', '=', 2).execute();
    await db().updateTable('audit_chain_head').set({ seq: 100 }).where('id', '=', 1).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 2, reason: 'reordered' });
  });

  it('detects a tail rewritten with consistent hashes through a signed checkpoint', async () => {
    await seedEvents(server, 5);
    expect(await server.services.audit.checkpoint()).toMatchObject({ kind: 'periodic', seq: 5 });
    await seedEvents(server, 2, 'acc_more');
    await db().updateTable('audit_events').set({ outcome: 'denied' }).where('seq', '=', 2).execute();
    await rehashFrom(server, 2);
    const report = await verify();
    expect(report.firstBroken).toMatchObject({ seq: 5, reason: 'changed' });
    expect(report.firstBroken!.detail).toMatch(/checkpoint/);
  });

  it('detects a record inserted past the chain head', async () => {
    await seedEvents(server, 3);
    const last = (await rows(server))[2]!;
    const forged = { ...last, id: 'aud_forged', seq: 4, at: Number(last.at), prev_hash: last.hash };
    await db().insertInto('audit_events').values({ ...forged, hash: recordHash(forged) }).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 4, reason: 'inserted' });
  });

  it.each([1, 2])('detects %i record(s) inserted in the middle, the records after moved up to make room, at the first one inserted', async (k) => {
    await seedEvents(server, 5);
    const all = await rows(server);
    for (const s of [5, 4, 3]) await db().updateTable('audit_events').set({ seq: s + k }).where('seq', '=', s).execute();
    let prev = all[1]!.hash;
    for (let i = 0; i < k; i++) {
      const forged = { ...all[1]!, id: `aud_forged${i}`, seq: 3 + i, at: Number(all[1]!.at), account_id: 'acc_victim', prev_hash: prev };
      prev = recordHash(forged);
      await db().insertInto('audit_events').values({ ...forged, hash: prev }).execute();
    }
    await db().updateTable('audit_chain_head').set({ seq: 5 + k }).where('id', '=', 1).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 3, id: 'aud_forged0', reason: 'inserted' });
  });

  it('detects a record inserted before the start of the chain (seq 0 or below)', async () => {
    await seedEvents(server, 3);
    const first = (await rows(server))[0]!;
    for (const seq of [0, -5]) {
      const forged = { ...first, id: `aud_forged${-seq}`, seq, at: Number(first.at) - 1000, account_id: 'acc_victim', prev_hash: '0'.repeat(64) };
      await db().insertInto('audit_events').values({ ...forged, hash: recordHash(forged) }).execute();
      // The auditor's list shows it, so verification must not pass over it.
      expect((await server.services.audit.list({ accountId: 'acc_victim' }, { limit: 10 })).records.map((r) => r.id)).toContain(forged.id);
      expect((await verify()).firstBroken).toMatchObject({ seq, id: forged.id, reason: 'inserted' });
      await db().deleteFrom('audit_events').where('id', '=', forged.id).execute();
    }
    expect(await verify()).toMatchObject({ ok: true, checked: 3 });
  });

  // SQLite stores what it is given (text sorts after every number, so the chain walk never reaches
  // it; '0x2' even reads as seq 2 in the views); PostgreSQL refuses both.
  /**
   * Inserts a forged record whose seq is not a whole number: PostgreSQL refuses it (false: nothing
   * more to check); SQLite keeps it, and the auditor's list shows it (true).
   */
  const insertForgedSeq = async (forged: Parameters<typeof recordHash>[0] & { id: string }): Promise<boolean> => {
    const insert = db().insertInto('audit_events').values({ ...forged, hash: recordHash(forged) } as never).execute();
    if (backend === 'scaleout') {
      await expect(insert).rejects.toThrow(/bigint|integer/);
      return false;
    }
    await insert;
    expect((await server.services.audit.list({ accountId: 'acc_victim' }, { limit: 10 })).records.map((r) => r.id)).toContain(forged.id);
    return true;
  };

  it.each([
    ['is not a number', 'z', 'aud_forged_text'],
    ['is text that reads as a number (0x2)', '0x2', 'aud_forged_hex'],
  ])('detects a record whose seq %s', async (_what, seq, id) => {
    await seedEvents(server, 3);
    const first = (await rows(server))[0]!;
    const forged = { ...first, id, seq: seq as unknown as number, account_id: 'acc_victim' };
    if (!(await insertForgedSeq(forged))) return;
    expect((await verify()).firstBroken).toMatchObject({ id: forged.id, reason: 'inserted' });
  });

  it('detects a record inserted between two others at a fractional seq (SQLite keeps 2.5 in an integer column)', async () => {
    await seedEvents(server, 4);
    const second = (await rows(server))[1]!;
    const forged = { ...second, id: 'aud_forged_frac', seq: 2.5, at: Number(second.at), account_id: 'acc_victim', prev_hash: second.hash };
    if (!(await insertForgedSeq(forged))) return;
    expect((await verify()).firstBroken).toMatchObject({ seq: 3, id: forged.id, reason: 'inserted' });
  });

  it('detects a time rewritten as text of the same value (0x…), which hides the record from time-filtered views', async () => {
    await seedEvents(server, 3);
    const second = (await rows(server))[1]!;
    const at = Number(second.at);
    const update = db().updateTable('audit_events').set({ at: `0x${at.toString(16)}` as unknown as number }).where('seq', '=', 2).execute();
    if (backend === 'scaleout') {
      await expect(update).rejects.toThrow(/bigint|integer/);
      return;
    }
    await update;
    expect((await server.services.audit.list({ to: at + 1 }, { limit: 10 })).records.map((r) => r.id)).not.toContain(second.id);
    expect((await verify()).firstBroken).toMatchObject({ seq: 2, id: second.id, reason: 'changed' });
  });

  // A blob holding the digits reads as that number (Number(Buffer) decodes it), and sorts after
  // every number and text in SQLite: past the walk, at the top of the views.
  it('detects a record whose seq is a blob of digits', async () => {
    await seedEvents(server, 3);
    const first = (await rows(server))[0]!;
    const forged = { ...first, id: 'aud_forged_blob', seq: 2, account_id: 'acc_victim' };
    const insert = db().insertInto('audit_events').values({ ...forged, seq: Buffer.from('2') as unknown as number, hash: recordHash(forged) }).execute();
    if (backend === 'scaleout') {
      await expect(insert).rejects.toThrow();
      return;
    }
    await insert;
    expect((await server.services.audit.list({ accountId: 'acc_victim' }, { limit: 10 })).records.map((r) => r.id)).toContain(forged.id);
    expect((await verify()).firstBroken).toMatchObject({ id: forged.id, reason: 'inserted' });
  });

  it('detects a time rewritten as a blob of the same digits, which hides the record from time-filtered views', async () => {
    await seedEvents(server, 3);
    const second = (await rows(server))[1]!;
    const at = Number(second.at);
    const update = db().updateTable('audit_events').set({ at: Buffer.from(String(at)) as unknown as number }).where('seq', '=', 2).execute();
    if (backend === 'scaleout') {
      await expect(update).rejects.toThrow();
      return;
    }
    await update;
    expect((await server.services.audit.list({ to: at + 1 }, { limit: 10 })).records.map((r) => r.id)).not.toContain(second.id);
    expect((await verify()).firstBroken).toMatchObject({ seq: 2, id: second.id, reason: 'changed' });
  });

  it('does not report a checkpoint signed while it verifies as a truncated tail', async () => {
    // The order thread (another connection) appends and the checkpoint job signs the new head
    // while a verification is between its reads: nothing was tampered with.
    await seedEvents(server, 3);
    const audit = server.services.audit;
    const verifyAll = audit.checkpoints.verifyAll.bind(audit.checkpoints);
    const spy = vi.spyOn(audit.checkpoints, 'verifyAll').mockImplementationOnce(async (db, now) => {
      await audit.record({ type: 'trading.faucet', accountId: 'acc_concurrent', details: { asset: 'USD', amount: '1' } });
      expect(await audit.checkpoint()).toMatchObject({ seq: 4 });
      return verifyAll(db, now);
    });
    try {
      expect((await verify()).ok).toBe(true);
    } finally {
      spy.mockRestore();
    }
    expect(await verify()).toMatchObject({ ok: true, checked: 4, checkpoints: 1 });
  });

  it('detects an altered checkpoint', async () => {
    await seedEvents(server, 3);
    const cp = await server.services.audit.checkpoint();
    expect(cp).not.toBeNull();
    expect(await verify()).toMatchObject({ ok: true, checkpoints: 1 });
    await db().updateTable('audit_checkpoints').set({ seq: 2 }).where('id', '=', cp!.id).execute();
    expect((await verify()).firstBroken).toMatchObject({ seq: 2, id: cp!.id, reason: 'checkpoint_invalid' });
  });

  it('writes recordIn with the caller’s transaction: a rollback leaves no record and no gap', async () => {
    await seedEvents(server, 2);
    await expect(
      server.services.store.transaction(async (trx) => {
        await server.services.audit.recordIn(trx, { type: 'trading.order.placed', accountId: 'acc_t', details: { orderId: 'ord_1', market: 'BTC-USD', side: 'buy', orderType: 'limit', quantity: '1', price: '10' } });
        throw new Error('the order failed');
      }),
    ).rejects.toThrow('the order failed');
    const ref = await server.services.store.transaction((trx) =>
      server.services.audit.recordIn(trx, { type: 'trading.order.cancelled', accountId: 'acc_t', details: { orderId: 'ord_2', market: 'BTC-USD' } }),
    );
    expect(ref.seq).toBe(3);
    expect((await rows(server)).map((r) => r.type)).toEqual(['admin.limits.changed', 'admin.limits.changed', 'trading.order.cancelled']);
    expect(await verify()).toMatchObject({ ok: true, checked: 3 });
  });
});

describe('two scale-out servers on one schema', () => {
  it('append concurrently into one total order that verifies from either', async (ctx) => {
    if (!scaleout) ctx.skip();
    const isolation = newIsolation();
    const a = await startTestServer({ backend: 'scaleout', isolation });
    // Same data dir: the processes of one deployment share the master key and the signing keyset.
    const b = await startTestServer({ backend: 'scaleout', isolation, dataDir: a.dataDir });
    try {
      // Rounds of concurrent appends from both processes: standalone records, records inside
      // callers' transactions, buffered events and checkpoints, all racing for the chain head.
      for (let round = 0; round < 10; round++) {
        const writes: Promise<unknown>[] = [];
        for (const s of [a, b]) {
          for (let i = 0; i < 3; i++) writes.push(s.services.audit.record({ type: 'admin.limits.changed', accountId: `acc_${round}_${i}`, details: { limits: { trading: i } } }));
          for (let i = 0; i < 2; i++) {
            writes.push(s.services.store.transaction((trx) => s.services.audit.recordIn(trx, { type: 'trading.fill', accountId: `acc_${round}`, details: { fillId: `f${round}${i}`, orderId: `o${round}`, market: 'ETH-USD', side: 'sell', price: '1', quantity: '2' } })));
          }
          s.services.audit.enqueue({ type: 'auth.failed', outcome: 'denied', details: { code: 'invalid_token' } });
          if (round % 3 === 0) writes.push(s.services.audit.checkpoint(), s.services.audit.flush());
        }
        await Promise.all(writes);
      }
      await Promise.all([a.services.audit.settle(), b.services.audit.settle()]);
      const seqs = (await rows(a)).map((r) => Number(r.seq));
      expect(seqs).toHaveLength(120);
      expect(seqs).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
      expect(await a.services.audit.verify()).toMatchObject({ ok: true, checked: 120, headSeq: 120 });
      expect(await b.services.audit.verify()).toMatchObject({ ok: true, checked: 120 });
    } finally {
      await b.close();
      await a.close();
      await dropSchema(isolation.pgSchema);
    }
  });
});
