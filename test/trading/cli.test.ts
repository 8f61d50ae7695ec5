import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createServices } from '../../src/services.js';
import { runCli } from '../support/process.js';
import { callerFor, fund, listMoon, MOON, USDC } from '../support/trading.js';

let dataDir: string;

/** Runs the real CLI (`moondraft …`) against the data dir. */
const moondraft = (...args: string[]) => runCli(args, { MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }, 60_000);

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-cli-'));
  const services = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }), { processMetrics: false });
  try {
    const t = services.trading;
    await listMoon(t);
    await fund(t, 'acc_cli_a', 'MOON', MOON(5));
    await fund(t, 'acc_cli_b', 'USDC', USDC(50));
    await t.orders.place(callerFor('acc_cli_a'), { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '2', quantity: '3' });
    await t.orders.place(callerFor('acc_cli_b'), { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '2', quantity: '1' });
  } finally {
    await services.close();
  }
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('moondraft ledger verify', () => {
  it('exits 0 with a summary when the ledger holds', async () => {
    const r = await moondraft('ledger', 'verify');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ledger verified: \d+ entries, \d+ postings, 2 assets, \d+ balances, 1 holds$/m);
  });

  it('exits 1 and prints the first violation when a balance was tampered with', async () => {
    const db = new Database(path.join(dataDir, 'moondraft.sqlite'));
    db.prepare(`update balances set available = '999' where owner = 'acc_cli_b' and asset = 'USDC'`).run();
    db.close();
    const r = await moondraft('ledger', 'verify');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ledger violation: balance of acc_cli_b in USDC is available 999 \/ held 0 but its postings sum to \d+ \/ 0$/m);
  });
});
