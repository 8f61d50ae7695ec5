/**
 * The database taken away mid-life (a TCP proxy in front of the real PostgreSQL, cut and brought
 * back): every request that needs it answers 503 `service_unavailable` with Retry-After, quickly,
 * nothing is half-written, and the server serves again by itself once the database is back.
 */
import type { Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toApiError } from '../../src/http/problem.js';
import { failedAtCommit, openStore, type Store } from '../../src/store/db.js';
import { migrateToLatest } from '../../src/store/migrate.js';
import type { Database } from '../../src/store/schema.js';
import { sessionFor } from '../support/auth.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { PG_URL, serviceAvailable } from '../support/services.js';
import { fund, USDC } from '../support/trading.js';
import { requestChallenge, signInEthereum, ethereumWallet, postLogin } from '../support/wallet.js';
import { RedisProxy as TcpProxy } from '../ratelimit/redis-proxy.js';

const available = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));
type Session = { headers: { authorization: string }; account: { id: string } };

const TABLES = ['orders', 'ledger_entries', 'balances', 'holds', 'faucet_grants', 'api_keys', 'assets', 'markets', 'tokens', 'withdrawals', 'sessions', 'refresh_tokens', 'accounts'] as const;

/**
 * A scale-out server (order thread on) whose PostgreSQL is reached through a TCP proxy the test can
 * cut or freeze; registers its own beforeAll / afterAll in the calling describe.
 */
function serverBehindProxy(env: Record<string, string> = {}) {
  const pg = new URL(PG_URL);
  const proxy = new TcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
  const isolation = newIsolation();
  const ctx = { proxy, server: undefined as unknown as TestServer };
  beforeAll(async () => {
    await proxy.start();
    const url = new URL(PG_URL);
    url.port = String(proxy.port);
    ctx.server = await startTestServer({ backend: 'scaleout', isolation, env: { DATABASE_URL: url.toString(), MOONDRAFT_ORDER_THREAD: 'on', ...env } });
    expect(ctx.server.services.trading.orders.threaded).toBe(true);
  });
  afterAll(async () => {
    proxy.thaw();
    await ctx.server?.close();
    await proxy.stop();
    await dropSchema(isolation.pgSchema);
  });
  const req = (method: string, url: string, s?: Session, payload?: unknown) =>
    ctx.server.app.inject({ method: method as 'GET', url, ...(s ? { headers: s.headers } : {}), ...(payload !== undefined ? { payload: payload as object } : {}) });
  /** The MOON-USDC market and a trader holding 500 USDC. */
  const marketAndTrader = async () => {
    const admin = await sessionFor(ctx.server, { role: 'admin' });
    expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'MOON', name: 'Moon', decimals: 6 })).statusCode).toBe(201);
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'MOON', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1', makerFeeBps: 10, takerFeeBps: 20 })).statusCode).toBe(201);
    const t = await sessionFor(ctx.server);
    await ctx.server.services.partnerLimits.set(t.account.id, { account: 10_000, tokens: 10_000, trading: 10_000 }, 'test');
    await fund(ctx.server.services.trading, t.account.id, 'USDC', USDC(500));
    return t;
  };
  return { ctx, proxy, req, marketAndTrader };
}

describe.runIf(available)('PostgreSQL gone while the server runs (order thread on)', () => {
  const { ctx, proxy, req, marketAndTrader } = serverBehindProxy();
  const counts = async () => {
    const out: Record<string, number> = {};
    for (const t of TABLES) out[t] = Number((await ctx.server.services.store.db.selectFrom(t).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    return out;
  };

  it('answers 503 service_unavailable for orders, cancels, withdrawals, token launches, keys, sign-in and refresh; writes nothing; serves again once it is back', async () => {
    const server = ctx.server;
    const t = await marketAndTrader();
    const resting = await req('POST', '/api/v1/trading/orders', t, { market: 'MOON-USDC', type: 'limit', side: 'buy', price: '1', quantity: '2' });
    expect(resting.statusCode).toBe(201);
    const restingId = resting.json().id as string;
    const signedIn = await signInEthereum(server);
    // A sign-in whose challenge was issued before the outage (challenges need neither store nor state).
    const wallet = ethereumWallet();
    const { message } = await requestChallenge(server, wallet.address, 'ethereum');
    const signature = await wallet.sign(message);
    const before = await counts();

    await proxy.stop();
    const calls: [string, () => ReturnType<typeof req>][] = [
      ['place order', () => req('POST', '/api/v1/trading/orders', t, { market: 'MOON-USDC', type: 'limit', side: 'buy', price: '1', quantity: '2', clientOrderId: 'during-outage' })],
      ['cancel order', () => req('DELETE', `/api/v1/trading/orders/${restingId}`, t)],
      ['cancel all', () => req('DELETE', '/api/v1/trading/orders', t)],
      ['withdraw', () => req('POST', '/api/v1/account/withdrawals', t, { asset: 'USDC', amount: '5', address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', clientWithdrawalId: 'during-outage' })],
      ['launch token', () => req('POST', '/api/v1/tokens', t, { name: 'Outage', symbol: 'OUTG', decimals: 6, supply: '1000' })],
      ['create key', () => req('POST', '/api/v1/keys', t, { label: 'during outage', scopes: ['market:read'] })],
      ['faucet', () => req('POST', '/api/v1/sandbox/faucet', t, { asset: 'USDC', amount: '1' })],
      ['balances', () => req('GET', '/api/v1/account/balances', t)],
      ['sign in', () => postLogin(server, message, signature)],
      ['refresh', () => server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: signedIn.refreshToken } })],
    ];
    for (const [what, call] of calls) {
      const started = Date.now();
      const res = await call();
      expect({ what, status: res.statusCode, code: res.json().code }).toEqual({ what, status: 503, code: 'service_unavailable' });
      expect(res.headers['retry-after'], what).toBe('1');
      expect(res.headers['content-type'], what).toMatch(/^application\/problem\+json/);
      expect(res.body, what).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres/i);
      // The pool's connect deadline (2 s) bounds it, never a hang.
      expect(Date.now() - started, what).toBeLessThan(3000);
    }

    await proxy.start(); // same port: the database is back
    await expect.poll(async () => (await req('GET', '/api/v1/account/balances', t)).statusCode, { timeout: 10_000, interval: 100 }).toBe(200);
    expect(await counts()).toEqual(before);
    // The order thread serves again, and the refused order never ran: placing it now is new (201).
    await expect
      .poll(async () => (await req('POST', '/api/v1/trading/orders', t, { market: 'MOON-USDC', type: 'limit', side: 'buy', price: '1', quantity: '2', clientOrderId: 'during-outage' })).statusCode, { timeout: 10_000, interval: 200 })
      .toBe(201);
    expect((await req('DELETE', `/api/v1/trading/orders/${restingId}`, t)).statusCode).toBe(200);
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: signedIn.refreshToken } })).statusCode).toBe(200);
    expect((await req('POST', '/api/v1/keys', t, { label: 'after outage', scopes: ['market:read'] })).statusCode).toBe(201);
    // The store errors were logged as service errors, not as unexpected crashes.
    expect(server.logs.filter((l) => l.msg === 'unexpected error')).toEqual([]);
  });
});

describe.runIf(available)('a transaction whose connection drops', () => {
  const pg = new URL(PG_URL);
  const proxy = new TcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
  const schema = newIsolation().pgSchema;
  let store: Store;
  beforeAll(async () => {
    await proxy.start();
    const url = new URL(PG_URL);
    url.port = String(proxy.port);
    store = await openStore({ databaseUrl: url.toString(), pgSchema: schema, dataDir: '/tmp' });
    await migrateToLatest(store);
  });
  afterAll(async () => {
    await store?.close();
    await proxy.stop();
    await dropSchema(schema);
  });
  const insert = (trx: Transaction<Database>, symbol: string) => trx.insertInto('assets').values({ symbol, name: symbol, decimals: 6, faucet: 0, created_by: null, created_at: 0, updated_at: 0 }).execute();

  it('before its COMMIT: rolled back, a 503 the client may retry', async () => {
    const err = await store
      .transaction(async (trx) => {
        await insert(trx, 'DROPA');
        await proxy.stop();
        await insert(trx, 'DROPB');
      })
      .catch((e: unknown) => e);
    expect(failedAtCommit(err)).toBe(false);
    expect(toApiError(err).apiError).toMatchObject({ status: 503, code: 'service_unavailable' });
    await proxy.start();
    expect(await store.db.selectFrom('assets').select('symbol').where('symbol', 'like', 'DROP%').execute()).toEqual([]);
  });

  it('a write outside a transaction (it commits by itself) that gets no answer: outcome unknown (500); a read: 503', async () => {
    store.limitQueries(500);
    try {
      proxy.freeze();
      const write = await store.db.insertInto('assets').values({ symbol: 'DROPW', name: 'DROPW', decimals: 6, faucet: 0, created_by: null, created_at: 0, updated_at: 0 }).execute().catch((e: unknown) => e);
      expect(failedAtCommit(write)).toBe(true);
      expect(toApiError(write)).toMatchObject({ apiError: { status: 500, code: 'internal_error' } });
      const read = await store.db.selectFrom('assets').select('symbol').execute().catch((e: unknown) => e);
      expect(failedAtCommit(read), String((read as Error).message) + (read as { code?: string }).code).toBe(false);
      expect(toApiError(read).apiError).toMatchObject({ status: 503, code: 'service_unavailable' });
    } finally {
      proxy.thaw();
      store.limitQueries(0);
    }
  });

  it('at its COMMIT: the outcome is unknown, so it is a 500, never a 503 that says nothing was done', async () => {
    const err = await store
      .transaction(async (trx) => {
        await insert(trx, 'DROPC');
        await proxy.stop(); // the connection goes as COMMIT is sent
      })
      .catch((e: unknown) => e);
    expect(failedAtCommit(err)).toBe(true);
    expect(toApiError(err)).toMatchObject({ apiError: { status: 500, code: 'internal_error' }, unexpected: true });
    await proxy.start();
  });
});

describe.runIf(available)('PostgreSQL that stops answering (the connection open, no bytes passing)', () => {
  const { ctx, proxy, req, marketAndTrader } = serverBehindProxy({ MOONDRAFT_DB_QUERY_TIMEOUT_MS: '1500' });

  it('answers orders and reads 503 within the statement deadline instead of holding them for ever, then serves again', async () => {
    const server = ctx.server;
    const t = await marketAndTrader();
    const order = (clientOrderId: string) => req('POST', '/api/v1/trading/orders', t, { market: 'MOON-USDC', type: 'limit', side: 'buy', price: '1', quantity: '2', clientOrderId });
    expect((await order('before-freeze')).statusCode).toBe(201);

    proxy.freeze();
    for (const [what, call] of [
      ['place order', () => order('during-freeze')],
      ['balances', () => req('GET', '/api/v1/account/balances', t)],
    ] as const) {
      const started = Date.now();
      const res = await call();
      expect({ what, status: res.statusCode, code: res.json().code }).toEqual({ what, status: 503, code: 'service_unavailable' });
      // The 1.5 s statement deadline (or the pool's 2 s connect deadline for a new connection).
      expect(Date.now() - started, what).toBeLessThan(5_000);
    }

    proxy.thaw();
    // The connections that timed out were dropped; new ones work, and the order thread serves again.
    await expect.poll(async () => (await req('GET', '/api/v1/account/balances', t)).statusCode, { timeout: 10_000, interval: 100 }).toBe(200);
    await expect.poll(async () => (await order('after-freeze')).statusCode, { timeout: 10_000, interval: 200 }).toBe(201);
    expect(server.logs.filter((l) => l.msg === 'unexpected error')).toEqual([]);
  });
});
