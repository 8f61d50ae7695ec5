import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_LIMITS } from '../../src/security/keys/service.js';
import { MAX_LIVE_SESSIONS } from '../../src/security/identity/sessions.js';
import { MAX_SAVED_ADDRESSES } from '../../src/trading/withdrawals/index.js';
import { sessionFor } from '../support/auth.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { fund } from '../support/trading.js';
import { signInEthereum } from '../support/wallet.js';

/**
 * Every count- or sum-based per-account limit, raced: limit + a few requests at once, on one
 * embedded server and spread over two scale-out servers sharing PostgreSQL and Redis. Exactly the
 * limit is admitted, each refusal has its documented code, and nothing of a refused one remains.
 */
const scaleoutUp = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));
// embedded: in-memory SQLite, the sequencer in the server thread; embedded-file: a SQLite file, the
// orders on the order thread's own connection, as `serve` runs them.
const backends = scaleoutUp ? (['embedded', 'embedded-file', 'scaleout'] as const) : (['embedded', 'embedded-file'] as const);

const env = {
  MOONDRAFT_FAUCET_MAX_PER_CALL: '1',
  MOONDRAFT_FAUCET_MAX_PER_DAY: '5',
  MOONDRAFT_TOKEN_DAILY_CREATIONS: '3',
  MOONDRAFT_MAX_OPEN_ORDERS: '3',
  MOONDRAFT_WITHDRAWAL_LIMIT_TIER0: '5',
  MOONDRAFT_WITHDRAWAL_AUTO_APPROVE: '3',
};
const EXTRA = 5;
type Session = Awaited<ReturnType<typeof sessionFor>>;
const tally = (codes: string[]) => codes.reduce<Record<string, number>>((t, c) => ({ ...t, [c]: (t[c] ?? 0) + 1 }), {});

describe.each(backends)('count and sum limits under concurrent requests on %s', (backend) => {
  const isolation = newIsolation();
  let servers: TestServer[];
  let admin: Session;
  /** The servers in turn: on scale-out every other request goes to the second server. */
  const at = (i: number) => servers[i % servers.length]!;
  const outcome = (r: { statusCode: number; json(): unknown }) => (r.statusCode < 300 ? `${r.statusCode}` : `${r.statusCode} ${(r.json() as { code: string }).code}`);

  beforeAll(async () => {
    if (backend !== 'scaleout') servers = [await startTestServer({ backend: 'embedded', env, sqliteFile: backend === 'embedded-file' })];
    else {
      const a = await startTestServer({ backend, isolation, env });
      servers = [a, await startTestServer({ backend, isolation, env, dataDir: a.dataDir })];
    }
    const a = servers[0]!;
    admin = await sessionFor(a, { role: 'admin' });
    for (const sym of ['MOON', 'DELI']) {
      expect((await a.app.inject({ method: 'POST', url: '/api/v1/admin/assets', headers: admin.headers, payload: { symbol: sym, name: sym, decimals: 6 } })).statusCode).toBe(201);
      const listed = await a.app.inject({ method: 'POST', url: '/api/v1/admin/markets', headers: admin.headers, payload: { base: sym, quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '0.01' } });
      expect(listed.statusCode).toBe(201);
    }
  });
  afterAll(async () => {
    for (const s of [...(servers ?? [])].reverse()) await s.close();
    if (backend === 'scaleout') await dropSchema(isolation.pgSchema);
  });

  async function race(n: number, send: (server: TestServer, i: number) => Promise<{ statusCode: number; json(): unknown }>): Promise<Record<string, number>> {
    const res = await Promise.all(Array.from({ length: n }, (_, i) => send(at(i), i)));
    return tally(res.map(outcome));
  }

  it('API keys per account', async () => {
    const owner = await sessionFor(servers[0]!);
    const svc = servers[0]!.services.apiKeys;
    for (let i = 0; i < KEY_LIMITS.maxKeysPerAccount - 3; i++) expect((await svc.create({ accountId: owner.account.id, role: 'trader' }, { label: `k${i}`, scopes: ['market:read'] })).ok).toBe(true);
    const t = await race(3 + EXTRA, (s, i) => s.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: `race ${i}`, scopes: ['market:read'] } }));
    expect(t).toEqual({ '201': 3, '403 key_limit_exceeded': EXTRA });
    const rows = await servers[0]!.services.store.db.selectFrom('api_keys').select('id').where('account_id', '=', owner.account.id).execute();
    expect(rows).toHaveLength(KEY_LIMITS.maxKeysPerAccount);
  });

  it('address-book entries', async () => {
    const owner = await sessionFor(servers[0]!);
    const w = servers[0]!.services.withdrawals;
    const actor = { kind: 'session' as const, id: owner.sessionId, accountId: owner.account.id };
    for (let i = 0; i < MAX_SAVED_ADDRESSES - 3; i++) expect((await w.addAddress(owner.account.id, actor, { chain: 'evm', address: `0x${randomBytes(20).toString('hex')}` }, Date.now())).ok).toBe(true);
    const t = await race(3 + EXTRA, (s) =>
      s.app.inject({ method: 'POST', url: '/api/v1/account/withdrawal-addresses', headers: owner.headers, payload: { chain: 'evm', address: `0x${randomBytes(20).toString('hex')}` } }),
    );
    expect(t).toEqual({ '201': 3, '409 conflict': EXTRA });
    const rows = await servers[0]!.services.store.db.selectFrom('withdrawal_addresses').select('id').where('account_id', '=', owner.account.id).execute();
    expect(rows).toHaveLength(MAX_SAVED_ADDRESSES);
  });

  it('live sessions per account: concurrent sign-ins beyond the cap end the oldest, never leave more live', async () => {
    const first = await signInEthereum(servers[0]!);
    const client = { ip: '127.0.0.1', userAgent: 'loop', requestId: 'r' };
    for (let i = 1; i < MAX_LIVE_SESSIONS - 2; i++) await servers[0]!.services.sessions.start({ accountId: first.account.id, chain: 'ethereum', authTimeMs: Date.now(), client });
    const signed = await Promise.all(Array.from({ length: 2 + EXTRA }, (_, i) => signInEthereum(at(i), first.wallet.privateKey)));
    const live = await servers[0]!.services.store.db
      .selectFrom('sessions')
      .select('id')
      .where('account_id', '=', first.account.id)
      .where('revoked_at', 'is', null)
      .execute();
    expect(live).toHaveLength(MAX_LIVE_SESSIONS);
    // The new sign-ins are all live; the oldest ones ended.
    expect(live.map((r) => r.id)).toEqual(expect.arrayContaining(signed.map((s) => s.sessionId)));
    expect(live.map((r) => r.id)).not.toContain(first.sessionId);
  });

  it('token launches per account per day', async () => {
    const owner = await sessionFor(servers[0]!);
    const base = randomBytes(3).toString('hex').toUpperCase().replace(/[^A-Z0-9]/g, 'X');
    const symbols = Array.from({ length: 3 + EXTRA }, (_, i) => `T${base}${i}`);
    const t = await race(symbols.length, (s, i) => s.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: owner.headers, payload: { name: 'Race', symbol: symbols[i], decimals: 6, supply: '1000' } }));
    expect(t).toEqual({ '201': 3, '403 token_creation_limit_exceeded': EXTRA });
    const db = servers[0]!.services.store.db;
    expect(await db.selectFrom('tokens').select('symbol').where('created_by', '=', owner.account.id).execute()).toHaveLength(3);
    expect(await db.selectFrom('assets').select('symbol').where('symbol', 'in', symbols).execute()).toHaveLength(3);
    expect(await db.selectFrom('markets').select('symbol').where('base', 'in', symbols).execute()).toHaveLength(3);
  });

  it('faucet per call and per day', async () => {
    const owner = await sessionFor(servers[0]!);
    expect(outcome(await servers[0]!.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: owner.headers, payload: { asset: 'USDC', amount: '2' } }))).toBe('400 validation_failed');
    const t = await race(5 + EXTRA, (s) => s.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: owner.headers, payload: { asset: 'USDC', amount: '1' } }));
    expect(t).toEqual({ '200': 5, '403 faucet_limit_exceeded': EXTRA });
    const bal = (await servers[0]!.services.trading.ledger.balances(owner.account.id)).find((b) => b.asset === 'USDC');
    expect(bal).toMatchObject({ available: 5_000_000n, held: 0n });
    expect(await servers[0]!.services.store.db.selectFrom('faucet_grants').select('id').where('account_id', '=', owner.account.id).execute()).toHaveLength(5);
  });

  it('withdrawals per rolling 24 h: the tier limit and the auto-approve budget', async () => {
    const owner = await sessionFor(servers[0]!);
    await fund(servers[0]!.services.trading, owner.account.id, 'USDC', 10_000_000n);
    // Tier 0 allows 5 USDC (env), 0.5 each: 10 fit, the balance (10) would take 20.
    const t = await race(10 + EXTRA, (s) =>
      s.app.inject({ method: 'POST', url: '/api/v1/account/withdrawals', headers: owner.headers, payload: { asset: 'USDC', amount: '0.5', address: `0x${randomBytes(20).toString('hex')}` } }),
    );
    expect(t).toEqual({ '201': 10, '403 withdrawal_limit_exceeded': EXTRA });
    const rows = await servers[0]!.services.store.db.selectFrom('withdrawals').select(['status', 'decided_by']).where('account_id', '=', owner.account.id).execute();
    expect(rows).toHaveLength(10);
    // Auto-approved (and sent) at most 3 USDC in 24 h: 6 of 0.5; the rest wait for an admin.
    expect(tally(rows.map((r) => `${r.status}`))).toEqual({ sent: 6, pending: 4 });
    const bal = (await servers[0]!.services.trading.ledger.balances(owner.account.id)).find((b) => b.asset === 'USDC');
    expect(bal).toMatchObject({ available: 5_000_000n, held: 2_000_000n });
  });

  it('open orders per market', async () => {
    const owner = await sessionFor(servers[0]!);
    for (let i = 0; i < 5; i++) expect((await servers[0]!.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: owner.headers, payload: { asset: 'USDC', amount: '1' } })).statusCode).toBe(200);
    const t = await race(3 + EXTRA, (s) =>
      s.app.inject({ method: 'POST', url: '/api/v1/trading/orders', headers: owner.headers, payload: { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '0.1', quantity: '1' } }),
    );
    expect(t).toEqual({ '201': 3, '422 open_orders_limit_exceeded': EXTRA });
    const orders = await servers[0]!.services.store.db.selectFrom('orders').select('id').where('account_id', '=', owner.account.id).execute();
    expect(orders).toHaveLength(3);
    const bal = (await servers[0]!.services.trading.ledger.balances(owner.account.id)).find((b) => b.asset === 'USDC');
    expect(bal?.held).toBe(300_600n); // 3 × (0.1 + the 0.0002 taker fee each may pay)
  });

  it('daily trading notional across two markets', async () => {
    const owner = await sessionFor(servers[0]!);
    for (let i = 0; i < 5; i++) expect((await servers[0]!.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: owner.headers, payload: { asset: 'USDC', amount: '1' } })).statusCode).toBe(200);
    const wallet = owner.account.wallet;
    expect((await servers[0]!.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${wallet}/trading-limit`, headers: admin.headers, payload: { dailyNotional: '1' } })).statusCode).toBe(200);
    expect((await servers[0]!.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${wallet}/open-orders-limit`, headers: admin.headers, payload: { maxOpenOrders: 100 } })).statusCode).toBe(200);
    // 0.2 USDC each: 5 fit the limit of 1.
    const t = await race(5 + EXTRA, (s, i) =>
      s.app.inject({ method: 'POST', url: '/api/v1/trading/orders', headers: owner.headers, payload: { market: i % 4 < 2 ? 'MOON-USDC' : 'DELI-USDC', side: 'buy', type: 'limit', price: '0.2', quantity: '1' } }),
    );
    expect(t).toEqual({ '201': 5, '403 daily_limit_exceeded': EXTRA });
    const orders = await servers[0]!.services.store.db.selectFrom('orders').select('id').where('account_id', '=', owner.account.id).execute();
    expect(orders).toHaveLength(5);
    const bal = (await servers[0]!.services.trading.ledger.balances(owner.account.id)).find((b) => b.asset === 'USDC');
    expect(bal?.held).toBe(1_002_000n); // 5 × (0.2 + the 0.0004 taker fee each may pay)
  });
});
