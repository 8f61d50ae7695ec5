import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AuditEvent } from '../src/audit/events.js';
import { sealEvent } from '../src/audit/seal.js';
import { loadConfig } from '../src/config/index.js';
import { createServices } from '../src/services.js';
import type { BenchRow } from './types.js';

const access = (i: number): AuditEvent => ({
  type: 'access.request',
  accountId: 'acc_bench',
  ip: '203.0.113.0/24',
  userAgent: 'bench/1.0',
  requestId: `req_${i}`,
  details: { method: 'GET', route: '/api/v1/market/tickers', status: 200, latencyMs: 0.42 },
});

function timedSync(n: number, fn: (i: number) => void): number {
  const start = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return performance.now() - start;
}

async function timed(n: number, fn: (i: number) => unknown): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return performance.now() - start;
}

/**
 * The audit log's costs on the embedded store: what a request pays to enqueue its access event
 * (against a bare array push), a record in its own transaction (against inserting the same sealed
 * row with no chain), buffered batch writes, and verification speed.
 */
export async function run(): Promise<BenchRow[]> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-bench-audit-'));
  const config = loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent', MOONDRAFT_AUDIT_FLUSH_MS: '600000', MOONDRAFT_AUDIT_BATCH_SIZE: '10000', MOONDRAFT_AUDIT_BUFFER_CAPACITY: '100000' });
  const services = await createServices(config, { sqliteFile: ':memory:', processMetrics: false });
  const rows: BenchRow[] = [];
  try {
    const audit = services.audit;
    // One batch of N: no write starts until the last enqueue, so the loop times enqueue alone.
    const N = 10_000;
    const events = Array.from({ length: N }, (_, i) => access(i));

    const sink: AuditEvent[] = [];
    const pushMs = timedSync(N, (i) => void sink.push({ ...events[i]!, at: Date.now() }));
    const enqueueMs = timedSync(N, (i) => audit.enqueue(events[i]!));
    rows.push({ name: 'enqueue (request hot path)', value: (enqueueMs * 1e6) / N, unit: 'ns/op', better: 'lower', baseline: { name: 'array push', value: (pushMs * 1e6) / N } });

    const flushStart = performance.now();
    await audit.settle();
    const flushMs = performance.now() - flushStart;
    rows.push({ name: 'buffered batch write (10k in one transaction)', value: Math.round(N / (flushMs / 1000)), unit: 'records/s' });

    const M = 2_000;
    const recordMs = await timed(M, (i) => audit.record(access(i)));
    let fake = 10_000_000;
    const plainMs = await timed(M, (i) =>
      services.store.transaction(async (trx) => {
        fake += 1;
        const sealed = sealEvent(access(i), services.keyring, Date.now());
        await trx.insertInto('audit_events').values({ ...sealed, seq: fake, prev_hash: '0'.repeat(64), hash: '0'.repeat(64) }).execute();
      }),
    );
    rows.push({ name: 'record (own transaction, chained)', value: Math.round(M / (recordMs / 1000)), unit: 'records/s', baseline: { name: 'sealed insert without chain', value: Math.round(M / (plainMs / 1000)) } });
    await services.store.db.deleteFrom('audit_events').where('seq', '>=', 10_000_000).execute();

    const verifyStart = performance.now();
    const report = await audit.verify();
    const verifyMs = performance.now() - verifyStart;
    if (!report.ok) throw new Error(`bench chain does not verify: ${JSON.stringify(report.firstBroken)}`);
    rows.push({ name: 'verify', value: Math.round(report.checked / (verifyMs / 1000)), unit: 'records/s' });
  } finally {
    await services.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.table(await run());
}
