/**
 * Withdrawal benchmarks (`npm run bench`): withdrawal requests below HTTP on SQLite, each one a
 * full transaction (account lock, limit sum, ledger hold, row, audit record) plus the sandbox send
 * (a second transaction moving the held funds out), beside the sandbox faucet — one ledger
 * transaction with a daily-sum check and no audit record — measured in the same run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { ok } from '../src/errors/registry.js';
import { createServices } from '../src/services.js';
import { SYSTEM_OWNERS } from '../src/trading/ledger/index.js';
import type { BenchRow } from './types.js';


const N = 400;

export async function run(): Promise<BenchRow[]> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-bench-wdr-'));
  const s = await createServices(
    loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent', MOONDRAFT_WITHDRAWAL_LIMIT_TIER0: '100000000', MOONDRAFT_FAUCET_MAX_PER_DAY: '100000000', MOONDRAFT_WITHDRAWAL_AUTO_APPROVE: '100000000' }),
    { processMetrics: false, sqliteFile: 'bench.sqlite' },
  );
  try {
    const account = 'acc_bench_withdrawals';
    const actor = { kind: 'session' as const, id: 'ses_bench', accountId: account };
    await s.trading.ledger.run(async (l) => {
      await l.post('bench.credit', null, [
        { owner: SYSTEM_OWNERS.issuance, asset: 'USDC', amount: -(10n ** 15n) },
        { owner: account, asset: 'USDC', amount: 10n ** 15n },
      ]);
      return ok(undefined);
    });
    const dest = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';

    let t = performance.now();
    for (let i = 0; i < N; i++) {
      const r = await s.withdrawals.request(account, actor, { asset: 'USDC', amount: '1', address: dest });
      if (!r.ok || r.value.status !== 'sent') throw new Error(`withdrawal ${i} failed`);
    }
    const withdrawalsPerSec = N / ((performance.now() - t) / 1000);

    t = performance.now();
    for (let i = 0; i < N; i++) {
      const r = await s.trading.faucet.grant('acc_bench_faucet', 'USDC', '1');
      if (!r.ok) throw new Error(`faucet ${i} failed`);
    }
    const faucetPerSec = N / ((performance.now() - t) / 1000);
    if (!(await s.trading.ledger.verify()).ok) throw new Error('ledger does not verify after the bench');

    return [{ name: 'withdrawal request + sandbox send (SQLite, sequential)', value: Math.round(withdrawalsPerSec), unit: 'withdrawals/s', baseline: { name: 'sandbox faucet grant (one ledger transaction)', value: Math.round(faucetPerSec) } }];
  } finally {
    await s.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
