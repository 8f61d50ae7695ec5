import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createServices } from '../../src/services.js';
import { runCli } from '../support/process.js';
import { randomWallet } from '../support/auth.js';
import { fund, USDC } from '../support/trading.js';

let dataDir: string;

/** Runs the real CLI (`moondraft …`) against the data dir. */
const moondraft = (...args: string[]) => runCli(args, { MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }, 60_000);

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-wdr-cli-'));
  const s = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }), { processMetrics: false });
  try {
    const a = await s.accounts.findOrCreate(randomWallet());
    if (!a.ok) throw new Error(a.detail);
    const id = a.value.id;
    const actor = { kind: 'session' as const, id: 'ses_cli', accountId: id };
    expect((await s.tokens.launch({ accountId: id, role: 'trader', actor }, { name: 'Cli token', symbol: 'CLI', decimals: 4, supply: '5000' })).ok).toBe(true);
    await fund(s.trading, id, 'USDC', USDC(3000));
    const dest = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';
    expect((await s.withdrawals.request(id, actor, { asset: 'USDC', amount: '400', address: dest })).ok).toBe(true); // sent
    const pending = await s.withdrawals.request(id, actor, { asset: 'USDC', amount: '0.5', address: dest });
    expect(pending.ok).toBe(true);
    // A pending one (held) and a cancelled one (released) remain besides the sent one.
    await s.withdrawals.setTier({ kind: 'admin', id: 'ses_admin', accountId: 'acc_admin' }, id, 1);
    const big = await s.withdrawals.request(id, actor, { asset: 'USDC', amount: '1500', address: dest });
    expect(big.ok && big.value.status).toBe('pending');
    const cancelled = await s.withdrawals.request(id, actor, { asset: 'USDC', amount: '1000.5', address: dest });
    if (!cancelled.ok) throw new Error(cancelled.detail);
    expect((await s.withdrawals.cancel(id, actor, cancelled.value.id)).ok).toBe(true);
  } finally {
    await s.close();
  }
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

it('`moondraft ledger verify` passes after token launches and withdrawals in every state', async () => {
  const r = await moondraft('ledger', 'verify');
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^ledger verified: /);
});
