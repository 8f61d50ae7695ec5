import { AsyncLocalStorage } from 'node:async_hooks';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/db.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { ethereumWallet } from '../support/wallet.js';
import { fund, USDC } from '../support/trading.js';

/**
 * Admin writes by an admin demoted while the request is in flight: its role check (the role in
 * shared state at authentication) passed, then another admin's demotion committed before the
 * write's transaction. The write must be refused when it is to commit, as a role change is.
 * The interleaving is controlled: the store's next transaction first commits the demotion.
 */
const scaleout = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

/** Makes the store's next transaction run `before` first (committed), then itself. */
export function beforeNextTransaction(store: Store, before: () => Promise<void>): void {
  const original = store.transaction.bind(store);
  // Every transaction begun until `before` has committed waits for it (those `before` makes
  // itself excepted): the next one may be a background pass's rather than the request's, and the
  // request's must not slip in meanwhile.
  const inBefore = new AsyncLocalStorage<true>();
  let done: Promise<void> | undefined;
  store.transaction = (async (fn: never) => {
    if (inBefore.getStore()) return original(fn);
    done ??= inBefore.run(true, before).finally(() => {
      store.transaction = original;
    });
    await done;
    return original(fn);
  }) as Store['transaction'];
}

/** Makes the store's next transaction, once committed, leave `table` unreadable until `restore` is called. */
export function breakAfterNextTransaction(store: Store, table: string): { restore: () => Promise<void> } {
  const original = store.transaction.bind(store);
  let broken = false;
  store.transaction = (async (fn: never) => {
    store.transaction = original;
    const out = await original(fn);
    await sql`ALTER TABLE ${sql.table(table)} RENAME TO ${sql.table(`${table}_away`)}`.execute(store.db);
    broken = true;
    return out;
  }) as Store['transaction'];
  return {
    restore: async () => {
      store.transaction = original;
      if (broken) await sql`ALTER TABLE ${sql.table(`${table}_away`)} RENAME TO ${sql.table(table)}`.execute(store.db);
    },
  };
}

describe.each((['embedded', 'scaleout'] as const).filter((b) => b === 'embedded' || scaleout))('an admin demoted while their write is in flight (%s)', (backend) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend });
  });
  afterAll(() => server.close());

  async function twoAdmins() {
    const a = await sessionFor(server, { role: 'admin' });
    const b = await sessionFor(server, { role: 'admin' });
    const demoteB = async () => {
      const r = await server.services.accounts.setRole(b.account.wallet, 'trader', a.account.id, { byAdmin: true });
      if (!r.ok) throw new Error(r.detail);
    };
    return { a, b, demoteB };
  }

  it('trading-limit and open-orders-limit: refused 403 forbidden_role, nothing written, no account prepared', async () => {
    const { db } = server.services.store;
    for (const [path, payload, table] of [
      ['trading-limit', { dailyNotional: '99999999' }, 'trading_limits'],
      ['open-orders-limit', { maxOpenOrders: 50000 }, 'open_orders_limits'],
    ] as const) {
      for (const fresh of [false, true]) {
        const { b, demoteB } = await twoAdmins();
        const target = fresh ? ethereumWallet().address : (await sessionFor(server)).account.wallet;
        beforeNextTransaction(server.services.store, demoteB);
        const res = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target}/${path}`, headers: b.headers, payload });
        expect({ path, fresh, status: res.statusCode, code: res.json().code }).toEqual({ path, fresh, status: 403, code: 'forbidden_role' });
        const account = await server.services.accounts.byWallet(target);
        if (fresh) expect({ path, account }).toEqual({ path, account: undefined });
        else expect({ path, rows: await db.selectFrom(table).select('account_id').where('account_id', '=', account!.id).execute() }).toEqual({ path, rows: [] });
        // The demotion did commit: b's next request is refused at the role check.
        expect((await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target}/${path}`, headers: b.headers, payload })).json().code).toBe('forbidden_role');
      }
    }
  });

  it('trading-limit and open-orders-limit answer a committed change from its transaction, even if reading it back would fail', async () => {
    const { a } = await twoAdmins();
    for (const [path, payload, table, expected] of [
      ['trading-limit', { dailyNotional: '1234' }, 'trading_limits', { limit: '1234', overridden: true }],
      ['open-orders-limit', { maxOpenOrders: 77 }, 'open_orders_limits', { maxOpenOrders: 77, overridden: true }],
    ] as const) {
      const target = (await sessionFor(server)).account;
      const broken = breakAfterNextTransaction(server.services.store, table);
      let res;
      try {
        res = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target.wallet}/${path}`, headers: a.headers, payload });
      } finally {
        await broken.restore();
      }
      expect({ path, status: res.statusCode, body: res.json() }).toEqual({ path, status: 200, body: expect.objectContaining(expected) });
      expect(await server.services.store.db.selectFrom(table).select('account_id').where('account_id', '=', target.id).execute()).toHaveLength(1);
    }
  });

  it('withdrawal-tier: refused 403 forbidden_role, tier unchanged, no account prepared; a committed change answers from its transaction', async () => {
    for (const fresh of [false, true]) {
      const { b, demoteB } = await twoAdmins();
      const target = fresh ? ethereumWallet().address : (await sessionFor(server)).account.wallet;
      beforeNextTransaction(server.services.store, demoteB);
      const res = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target}/withdrawal-tier`, headers: b.headers, payload: { tier: 2 } });
      expect({ fresh, status: res.statusCode, code: res.json().code }).toEqual({ fresh, status: 403, code: 'forbidden_role' });
      const account = await server.services.accounts.byWallet(target);
      if (fresh) expect(account).toBeUndefined();
      else expect(await server.services.store.db.selectFrom('withdrawal_settings').select('tier').where('account_id', '=', account!.id).execute()).toEqual([]);
    }
    const { a } = await twoAdmins();
    const target = (await sessionFor(server)).account;
    const broken = breakAfterNextTransaction(server.services.store, 'withdrawal_settings');
    let res;
    try {
      res = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target.wallet}/withdrawal-tier`, headers: a.headers, payload: { tier: 1 } });
    } finally {
      await broken.restore();
    }
    expect({ status: res.statusCode, body: res.json() }).toEqual({ status: 200, body: expect.objectContaining({ tier: 1 }) });
  });

  it('withdrawal approve and reject: refused 403 forbidden_role, the withdrawal stays pending', async () => {
    for (const decision of ['approve', 'reject'] as const) {
      const { a, b, demoteB } = await twoAdmins();
      const owner = await sessionFor(server);
      await server.services.partnerLimits.set(owner.account.id, { account: 10_000, tokens: 10_000, trading: 10_000 }, 'test');
      await fund(server.services.trading, owner.account.id, 'USDC', USDC('5000'));
      expect((await server.services.withdrawals.setTier({ kind: 'admin', id: a.sessionId, accountId: a.account.id }, owner.account.id, 1)).ok).toBe(true);
      const w = await server.app.inject({ method: 'POST', url: '/api/v1/account/withdrawals', headers: owner.headers, payload: { asset: 'USDC', amount: '2000', address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed' } });
      expect(w.json().status).toBe('pending');
      beforeNextTransaction(server.services.store, demoteB);
      const res = await server.app.inject({ method: 'POST', url: `/api/v1/admin/withdrawals/${w.json().id}/${decision}`, headers: b.headers, payload: {} });
      expect({ decision, status: res.statusCode, code: res.json().code }).toEqual({ decision, status: 403, code: 'forbidden_role' });
      expect((await server.services.withdrawals.get(w.json().id))?.status).toBe('pending');
      // A standing admin still decides it.
      expect((await server.app.inject({ method: 'POST', url: `/api/v1/admin/withdrawals/${w.json().id}/${decision}`, headers: a.headers, payload: {} })).statusCode).toBe(200);
    }
  });
  it('ip blocks: a demoted admin neither adds nor lifts a block (403 forbidden_role, nothing stored or lifted)', async () => {
    const { db } = server.services.store;
    const added = `203.0.113.${10 + (backend === 'embedded' ? 0 : 1)}`;
    {
      const { b, demoteB } = await twoAdmins();
      beforeNextTransaction(server.services.store, demoteB);
      const res = await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: b.headers, payload: { target: added } });
      expect({ status: res.statusCode, code: res.json().code }).toEqual({ status: 403, code: 'forbidden_role' });
      expect(await db.selectFrom('ip_blocks').select('target').where('target', '=', added).execute()).toEqual([]);
      expect((await server.services.ipBlocks.list()).map((x) => x.target)).not.toContain(added);
    }
    const { a, b, demoteB } = await twoAdmins();
    const lifted = `198.51.100.${20 + (backend === 'embedded' ? 0 : 1)}`;
    expect((await server.services.ipBlocks.add(lifted, { reason: 'test', by: a.account.id })).ok).toBe(true);
    beforeNextTransaction(server.services.store, demoteB);
    const res = await server.app.inject({ method: 'DELETE', url: `/api/v1/admin/ip-blocks?target=${lifted}`, headers: b.headers });
    expect({ status: res.statusCode, code: res.json().code }).toEqual({ status: 403, code: 'forbidden_role' });
    expect(await db.selectFrom('ip_blocks').select('target').where('target', '=', lifted).execute()).toEqual([{ target: lifted }]);
    expect((await server.services.ipBlocks.list()).map((x) => x.target)).toContain(lifted);
    // A standing admin still lifts it.
    expect((await server.app.inject({ method: 'DELETE', url: `/api/v1/admin/ip-blocks?target=${lifted}`, headers: a.headers })).statusCode).toBe(204);
  });
  it('api key suspend and unsuspend: refused 403 forbidden_role, the key unchanged', async () => {
    const owner = await sessionFor(server);
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'demoted-midway', scopes: ['orders:read'] } });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    const state = async () => (await server.services.store.db.selectFrom('api_keys').select(['suspended_at', 'version']).where('id', '=', id).executeTakeFirstOrThrow()).suspended_at;
    for (const action of ['suspend', 'unsuspend'] as const) {
      const { a, b, demoteB } = await twoAdmins();
      const before = await state();
      beforeNextTransaction(server.services.store, demoteB);
      const res = await server.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${id}/${action}`, headers: b.headers, payload: {} });
      expect({ action, status: res.statusCode, code: res.json().code }).toEqual({ action, status: 403, code: 'forbidden_role' });
      expect({ action, suspendedAt: await state() }).toEqual({ action, suspendedAt: before });
      // A standing admin still makes the change.
      expect((await server.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${id}/${action}`, headers: a.headers, payload: {} })).json().status).toBe(action === 'suspend' ? 'suspended' : 'active');
    }
  });
  it('partner limits PUT: refused 403 forbidden_role, no override written', async () => {
    const { a, b, demoteB } = await twoAdmins();
    const target = (await sessionFor(server)).account;
    beforeNextTransaction(server.services.store, demoteB);
    const res = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target.wallet}/limits`, headers: b.headers, payload: { trading: 100000 } });
    expect({ status: res.statusCode, code: res.json().code }).toEqual({ status: 403, code: 'forbidden_role' });
    expect(await server.services.store.db.selectFrom('rate_limit_overrides').select('account_id').where('account_id', '=', target.id).execute()).toEqual([]);
    expect(await server.services.partnerLimits.read(target.id)).toBeUndefined();
    // A standing admin still sets them.
    expect((await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target.wallet}/limits`, headers: a.headers, payload: { trading: 100000 } })).json().overrides).toEqual({ trading: 100000 });
  });
  it('asset create and market listing: refused 403 forbidden_role, nothing created or listed', async () => {
    const { db } = server.services.store;
    const { a, b, demoteB } = await twoAdmins();
    beforeNextTransaction(server.services.store, demoteB);
    const asset = await server.app.inject({ method: 'POST', url: '/api/v1/admin/assets', headers: b.headers, payload: { symbol: 'DEMA', name: 'Demoted', decimals: 6 } });
    expect({ status: asset.statusCode, code: asset.json().code }).toEqual({ status: 403, code: 'forbidden_role' });
    expect(await db.selectFrom('assets').select('symbol').where('symbol', '=', 'DEMA').execute()).toEqual([]);

    const c = await twoAdmins();
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/assets', headers: a.headers, payload: { symbol: 'DEMM', name: 'Demoted', decimals: 6 } })).statusCode).toBe(201);
    const payload = { base: 'DEMM', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '0.01' };
    beforeNextTransaction(server.services.store, c.demoteB);
    const listed = await server.app.inject({ method: 'POST', url: '/api/v1/admin/markets', headers: c.b.headers, payload });
    expect({ status: listed.statusCode, code: listed.json().code }).toEqual({ status: 403, code: 'forbidden_role' });
    expect(await db.selectFrom('markets').select('symbol').where('symbol', '=', 'DEMM-USDC').execute()).toEqual([]);
    // A standing admin still lists it.
    expect((await server.app.inject({ method: 'POST', url: '/api/v1/admin/markets', headers: a.headers, payload })).statusCode).toBe(201);
  });
  it('revoke-sessions: refused 403 forbidden_role, the sessions still valid', async () => {
    const { a, b, demoteB } = await twoAdmins();
    const target = (await sessionFor(server)).account;
    const { session } = await server.services.sessions.start({ accountId: target.id, chain: target.chain, authTimeMs: server.services.clock.now(), client: { ip: '127.0.0.1', userAgent: undefined, requestId: 'test' } });
    beforeNextTransaction(server.services.store, demoteB);
    const res = await server.app.inject({ method: 'POST', url: `/api/v1/admin/accounts/${target.wallet}/revoke-sessions`, headers: b.headers });
    expect({ status: res.statusCode, code: res.json().code }).toEqual({ status: 403, code: 'forbidden_role' });
    expect(await server.services.store.db.selectFrom('sessions').select('revoked_at').where('id', '=', session.id).execute()).toEqual([{ revoked_at: null }]);
    // A standing admin still revokes them.
    expect((await server.app.inject({ method: 'POST', url: `/api/v1/admin/accounts/${target.wallet}/revoke-sessions`, headers: a.headers })).json()).toEqual({ revoked: 1 });
  });
});
