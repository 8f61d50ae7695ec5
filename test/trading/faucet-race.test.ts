import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import type { Store } from '../../src/store/db.js';
import { serviceAvailable } from '../support/services.js';
import { openTestStore } from '../support/stores.js';
import { tradingOn } from '../support/trading.js';
import { gated, gateAfterRead } from '../support/gate.js';

const pg = await serviceAvailable('postgres');

// Two faucet requests of one account on a PostgreSQL pool (or two scale-out servers): the second
// commits between the first one's daily-bound check and its credit.
describe.skipIf(!pg)('faucet daily bound under racing grants (postgres)', () => {
  let inner: Store;
  let trading: Awaited<ReturnType<typeof tradingOn>>;
  const gate = gateAfterRead('faucet_grants');
  beforeAll(async () => {
    inner = await openTestStore('postgres');
    trading = await tradingOn(gated(inner, gate.plugin), { clock: new ManualClock(Date.UTC(2026, 2, 1, 12)) }); // 10,000 per call, 100,000 per day
  });
  afterAll(async () => {
    await trading.close();
    await inner.close();
  });

  it('never grants more than MOONDRAFT_FAUCET_MAX_PER_DAY per account and asset', async () => {
    const acc = 'acc_faucet_race';
    // 90,000 of the 100,000 already granted today: exactly one more grant of 10,000 fits.
    for (let i = 0; i < 9; i++) expect((await trading.faucet.grant(acc, 'USDC', '10000')).ok).toBe(true);
    gate.arm();
    const first = trading.faucet.grant(acc, 'USDC', '10000'); // reads 90,000 granted, then pauses
    await gate.reached;
    // The second either commits meanwhile (having read 90,000 too) or waits for the first's lock
    // on the balance row (PostgreSQL's ledger transactions lock what they read): never both pass.
    const second = trading.faucet.grant(acc, 'USDC', '10000');
    await Promise.race([second, new Promise((r) => setTimeout(r, 200))]);
    gate.release();
    const results = [await first, await second].map((r) => (r.ok ? 'ok' : r.code));

    const granted = (await inner.db.selectFrom('faucet_grants').select('amount').where('account_id', '=', acc).execute()).reduce((s, g) => s + BigInt(g.amount), 0n);
    const balance = (await trading.ledger.balances(acc)).find((b) => b.asset === 'USDC')?.available;
    expect({ results: results.sort(), granted, balance }).toEqual({ results: ['faucet_limit_exceeded', 'ok'], granted: 100_000_000_000n, balance: 100_000_000_000n });
  });
});

describe('the faucet outside the sandbox', () => {
  it('credits nothing in live, even if something other than its route (absent in live) calls it', async () => {
    const { loadConfig } = await import('../../src/config/index.js');
    const store = await openTestStore('sqlite');
    const live = loadConfig({}).trading;
    const trading = await tradingOn(store, { config: { faucet: { ...live.faucet, enabled: false } } });
    try {
      const r = await trading.faucet.grant('acc_live_faucet', 'USDC', '10');
      expect(r).toMatchObject({ ok: false, code: 'validation_failed' });
      expect(await trading.ledger.balances('acc_live_faucet')).toEqual([]);
      // The configuration says so by environment.
      const { Keyring } = await import('../../src/security/crypto/keyring.js');
      expect(loadConfig({}).trading.faucet.enabled).toBe(true);
      const liveConfig = loadConfig({ MOONDRAFT_ENV: 'live', MOONDRAFT_MASTER_KEY: Keyring.generateSpec(), MOONDRAFT_JWT_KEYS_FILE: '/k.json', MOONDRAFT_TRUSTED_PROXIES: '10.0.0.1', MOONDRAFT_PUBLIC_URL: 'https://api.example.test' });
      expect(liveConfig.trading.faucet.enabled).toBe(false);
    } finally {
      await trading.close();
      await store.close();
    }
  });
});
