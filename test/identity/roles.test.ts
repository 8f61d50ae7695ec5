import { base58 } from '@scure/base';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { buildServer } from '../../src/http/server.js';
import type { App } from '../../src/http/types.js';
import type { SecurityEvent } from '../../src/security/events/index.js';
import { StateUnavailableError } from '../../src/state/port.js';
import { ROLES, type Permission } from '../../src/security/rbac/roles.js';
import { createServices, type Services } from '../../src/services.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { ethereumWallet, signInEthereum, signInSolana } from '../support/wallet.js';

/**
 * The permission matrix, exercised through routes declaring permissions. Trading routes belong to
 * a later issue, so this suite builds its own server with one test route per permission it needs
 * (the way test/http/problems.test.ts adds routes), rather than registering fake routes in production.
 */
describe('the permission matrix through declared route permissions', () => {
  let server: TestServer;
  let built: { app: App; services: Services };
  beforeAll(async () => {
    server = await startTestServer();
    const services = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: server.dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }), { sqliteFile: ':memory:', processMetrics: false });
    const app = await buildServer(services);
    const permissions: Permission[] = ['orders:write', 'withdrawals:write', 'tokens:write', 'market:read', 'webhooks:write', 'audit:read'];
    for (const permission of permissions) {
      app.post(`/api/v1/__test/${permission.replace(':', '-')}`, { config: { permission } }, async () => ({ done: true }));
    }
    await app.ready();
    built = { app, services };
  });
  afterAll(async () => {
    await built.app.close();
    await built.services.close();
    await server.close();
  });

  async function attempt(permission: string, role: (typeof ROLES)[number]) {
    const s = await sessionFor({ ...server, services: built.services } as TestServer, { role });
    const res = await built.app.inject({ method: 'POST', url: `/api/v1/__test/${permission.replace(':', '-')}`, headers: s.headers });
    return { status: res.statusCode, code: res.json().code as string | undefined };
  }

  it('a developer calling a trading route gets 403 forbidden_role', async () => {
    for (const permission of ['orders:write', 'withdrawals:write', 'tokens:write']) {
      expect(await attempt(permission, 'developer'), permission).toEqual({ status: 403, code: 'forbidden_role' });
    }
  });

  it('traders and admins may trade; auditors may not', async () => {
    expect((await attempt('orders:write', 'trader')).status).toBe(200);
    expect((await attempt('orders:write', 'admin')).status).toBe(200);
    expect(await attempt('orders:write', 'auditor')).toEqual({ status: 403, code: 'forbidden_role' });
  });

  it('developers read market data and configure webhooks; only auditors read audit logs', async () => {
    expect((await attempt('market:read', 'developer')).status).toBe(200);
    expect((await attempt('webhooks:write', 'developer')).status).toBe(200);
    expect((await attempt('audit:read', 'auditor')).status).toBe(200);
    for (const role of ['trader', 'developer', 'admin'] as const) expect(await attempt('audit:read', role)).toEqual({ status: 403, code: 'forbidden_role' });
  });
});

describe('admin role management', () => {
  let server: TestServer;
  const events: SecurityEvent[] = [];
  beforeAll(async () => {
    server = await startTestServer();
    server.services.events.subscribe((e) => void events.push(e));
  });
  afterAll(() => server.close());

  const setRole = (headers: Record<string, string>, address: string, payload: unknown) =>
    server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${address}/role`, headers, payload: payload as object });

  it('a non-admin calling an admin route gets 403 forbidden_role (anonymous 401)', async () => {
    const target = await signInEthereum(server);
    for (const role of ['trader', 'developer', 'auditor'] as const) {
      const caller = await sessionFor(server, { role });
      const res = await setRole(caller.headers, target.wallet.address, { role: 'admin' });
      expect(res.statusCode, role).toBe(403);
      expect(res.json().code).toBe('forbidden_role');
    }
    const own = await setRole(target.headers, target.wallet.address, { role: 'admin' });
    expect(own.json().code).toBe('forbidden_role');
    const anonymous = await setRole({}, target.wallet.address, { role: 'admin' });
    expect(anonymous.statusCode).toBe(401);
    expect((await server.services.accounts.byId(target.account.id))?.role).toBe('trader');
  });

  it('an admin sets a role; it applies to the account’s very next request', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const target = await signInSolana(server);
    const res = await setRole(admin.headers, target.wallet.address, { role: 'developer' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: target.account.id, wallet: target.wallet.address, role: 'developer' });
    const me = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: target.headers });
    expect(me.json().role).toBe('developer');
    expect(events.find((e) => e.type === 'role.changed' && e.accountId === target.account.id)).toMatchObject({ from: 'trader', to: 'developer', by: admin.account.id });
    // and the next sign-in or refresh carries it in the token
    const refreshed = await server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: target.refreshToken } });
    expect(refreshed.json().account.role).toBe('developer');
  });

  it('a role in shared state that this server does not know refuses the session instead of falling back to the token’s role', async () => {
    // The token says admin; shared state holds a role value this version cannot read (corrupted, or
    // written by a newer version). Falling back to the token would keep admin rights a demotion
    // may have taken away: refuse, as for a token with an unknown role.
    const admin = await sessionFor(server, { role: 'admin' });
    await server.services.state.set(`acct:role:${admin.account.id}`, 'superuser');
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', headers: admin.headers });
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('invalid_token');
    await server.services.state.set(`acct:role:${admin.account.id}`, 'admin');
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', headers: admin.headers })).statusCode).toBe(200);
  });

  it('a role change whose publish to shared state fails took effect: it is announced in the process and answered 503', async () => {
    const root = await sessionFor(server, { role: 'admin' });
    const target = await signInEthereum(server);
    const heard: SecurityEvent[] = [];
    const off = server.services.events.subscribe((e) => {
      if (e.type === 'role.changed' && e.accountId === target.account.id) heard.push(e);
    });
    const state = server.services.state;
    const set = state.set.bind(state);
    state.set = async (key: string, value: string, ttlMs?: number) => {
      if (key === `acct:role:${target.account.id}`) throw new StateUnavailableError('test: shared state down');
      return set(key, value, ttlMs);
    };
    try {
      const res = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target.account.wallet}/role`, headers: root.headers, payload: { role: 'developer' } });
      expect(res.statusCode).toBe(503);
    } finally {
      state.set = set;
      off();
    }
    expect((await server.services.accounts.byId(target.account.id))?.role).toBe('developer');
    // This process's listeners (the key service's account cache, the audit) heard of the change.
    expect(heard).toEqual([expect.objectContaining({ from: 'trader', to: 'developer' })]);
  });

  it('an admin demoted loses the admin routes at the next request', async () => {
    const root = await sessionFor(server, { role: 'admin' });
    const deputy = await signInEthereum(server);
    await setRole(root.headers, deputy.wallet.address, { role: 'admin' });
    const other = await signInEthereum(server);
    expect((await setRole(deputy.headers, other.wallet.address, { role: 'auditor' })).statusCode).toBe(200);
    await setRole(root.headers, deputy.wallet.address, { role: 'trader' });
    expect((await setRole(deputy.headers, other.wallet.address, { role: 'admin' })).json().code).toBe('forbidden_role');
  });

  it('a role change by an admin who has just been demoted is refused when it commits (two admins demoting each other leave one)', async () => {
    const a = await signInEthereum(server);
    const b = await signInEthereum(server);
    const target = await signInEthereum(server);
    await server.services.accounts.setRole(a.wallet.address, 'admin', 'cli');
    await server.services.accounts.setRole(b.wallet.address, 'admin', 'cli');
    expect((await server.services.accounts.setRole(b.wallet.address, 'trader', a.account.id, { byAdmin: true })).ok).toBe(true);
    // b's requests passed the role check before the demotion committed; their changes come after.
    expect(await server.services.accounts.setRole(target.wallet.address, 'admin', b.account.id, { byAdmin: true })).toMatchObject({ ok: false, code: 'forbidden_role' });
    expect(await server.services.accounts.setRole(a.wallet.address, 'trader', b.account.id, { byAdmin: true })).toMatchObject({ ok: false, code: 'forbidden_role' });
    expect((await server.services.accounts.byId(target.account.id))?.role).toBe('trader');
    expect((await server.services.accounts.byId(a.account.id))?.role).toBe('admin');
    // The refused changes were not audited as changes.
    const by: unknown[] = [];
    for await (const view of server.services.audit.export({ type: 'admin.role.changed' })) by.push(view.details?.by);
    expect(by.filter((x) => x === a.account.id)).toHaveLength(1);
    expect(by.filter((x) => x === b.account.id)).toHaveLength(0);
  });

  it('an admin cannot change their own role (four eyes): the last admin cannot demote themselves', async () => {
    const admin = await signInEthereum(server);
    await server.services.accounts.setRole(admin.wallet.address, 'admin', 'cli');
    // Any spelling of their own address is their own account.
    for (const address of [admin.wallet.address, admin.wallet.address.toLowerCase()]) {
      for (const role of ['trader', 'auditor', 'admin'] as const) {
        const res = await setRole(admin.headers, address, { role });
        expect(res.statusCode, `${address} ${role}`).toBe(403);
        expect(res.json().code).toBe('four_eyes_required');
      }
    }
    expect((await server.services.accounts.byId(admin.account.id))?.role).toBe('admin');
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: admin.headers })).json().role).toBe('admin');
    // Another admin may.
    const other = await sessionFor(server, { role: 'admin' });
    expect((await setRole(other.headers, admin.wallet.address, { role: 'trader' })).statusCode).toBe(200);
  });

  it('refuses unknown roles and malformed addresses with 400', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const target = await signInEthereum(server);
    for (const payload of [{ role: 'superuser' }, { role: 'Admin' }, { role: ['admin'] }, {}, { role: 'admin', extra: 1 }]) {
      const res = await setRole(admin.headers, target.wallet.address, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
    for (const address of ['0x12', "0x'%20OR%201=1", 'not-a-wallet']) {
      expect((await setRole(admin.headers, address, { role: 'trader' })).statusCode).toBe(400);
    }
  });

  it('refuses an address that only looks like a wallet, and creates no account for it', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const checksummed = ethereumWallet().address;
    // One letter's case flipped: the EIP-55 checksum (there to catch a mistyped address) fails.
    const at = checksummed.slice(2).search(/[a-fA-F]/) + 2;
    const flipped = checksummed[at]! === checksummed[at]!.toUpperCase() ? checksummed[at]!.toLowerCase() : checksummed[at]!.toUpperCase();
    const badChecksum = `${checksummed.slice(0, at)}${flipped}${checksummed.slice(at + 1)}`;
    // Base58 of the right length, but not 32 bytes: no Solana public key.
    const notAKey = base58.encode(new Uint8Array(31).fill(200));
    expect(notAKey).toMatch(/^[1-9A-HJ-NP-Za-km-z]{32,44}$/);
    for (const address of [badChecksum, notAKey]) {
      const res = await setRole(admin.headers, address, { role: 'admin' });
      expect(res.statusCode, address).toBe(400);
      expect(res.json().code).toBe('validation_failed');
      expect(await server.services.accounts.byWallet(address), address).toBeUndefined();
    }
  });
});

const rolesScaleout = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

describe.each((['embedded', 'scaleout'] as const).filter((b) => b === 'embedded' || rolesScaleout))('a refused role change creates nothing (%s)', (backend) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend });
  });
  afterAll(() => server.close());

  it('a change refused when it commits (the caller is no longer an admin) leaves no account for a wallet that had none', async () => {
    const a = await signInEthereum(server);
    const b = await signInEthereum(server);
    await server.services.accounts.setRole(a.wallet.address, 'admin', 'cli');
    await server.services.accounts.setRole(b.wallet.address, 'admin', 'cli');
    // b passed the request's role check, then a demoted b before b's change committed.
    expect((await server.services.accounts.setRole(b.wallet.address, 'trader', a.account.id, { byAdmin: true })).ok).toBe(true);
    const fresh = ethereumWallet().address;
    expect(await server.services.accounts.setRole(fresh, 'admin', b.account.id, { byAdmin: true })).toMatchObject({ ok: false, code: 'forbidden_role' });
    // Before, the account was created before the transaction that refused the change.
    expect(await server.services.accounts.byWallet(fresh)).toBeUndefined();
    // A change that goes through still prepares the account, in the role it sets, audited.
    const prepared = await server.services.accounts.setRole(fresh, 'auditor', a.account.id, { byAdmin: true });
    expect(prepared).toMatchObject({ ok: true, value: { role: 'auditor' } });
    const account = await server.services.accounts.byWallet(fresh);
    expect(account).toMatchObject({ role: 'auditor', chain: 'ethereum' });
    const records: { accountId?: string | null; details?: Record<string, unknown> | null }[] = [];
    for await (const view of server.services.audit.export({ type: 'admin.role.changed' })) records.push(view as never);
    expect(records.filter((r) => r.accountId === account!.id).map((r) => r.details)).toEqual([expect.objectContaining({ from: 'trader', to: 'auditor', by: a.account.id })]);
  });

  it('the other admin PUTs that prepare an account create none when they refuse the request', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const fresh = ethereumWallet().address;
    const put = (path: string, payload: object) => server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${fresh}/${path}`, headers: admin.headers, payload });
    for (const [path, payload] of [
      ['trading-limit', { dailyNotional: '-5' }],
      ['trading-limit', { dailyNotional: 'lots' }],
      ['open-orders-limit', { maxOpenOrders: 0 }],
      ['withdrawal-tier', { tier: 7 }],
      ['limits', { market: 0 }],
      ['role', { role: 'root' }],
    ] as const) {
      const res = await put(path, payload);
      expect({ path, status: res.statusCode, code: res.json().code }).toEqual({ path, status: 400, code: 'validation_failed' });
    }
    // Partner limits never prepare an account: an unknown wallet is 404.
    expect((await put('limits', { market: 50 })).statusCode).toBe(404);
    expect(await server.services.accounts.byWallet(fresh)).toBeUndefined();
  });
});

describe.each((['embedded', 'scaleout'] as const).filter((b) => b === 'embedded' || rolesScaleout))('an admin write that fails prepares no account (%s)', (backend) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend });
  });
  afterAll(() => server.close());

  it('trading-limit, open-orders-limit and withdrawal-tier create the account in their transaction: a 500 there leaves none', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const { db } = server.services.store;
    const routes = [
      ['trading-limit', { dailyNotional: '500' }, 'trading_limits'],
      ['open-orders-limit', { maxOpenOrders: 7 }, 'open_orders_limits'],
      ['withdrawal-tier', { tier: 2 }, 'withdrawal_settings'],
    ] as const;
    for (const [path, payload, table] of routes) {
      const fresh = ethereumWallet().address;
      const put = () => server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${fresh}/${path}`, headers: admin.headers, payload });
      // The store fails the write itself, after the account would have been prepared.
      if (backend === 'embedded') {
        await sql`CREATE TRIGGER fail_write BEFORE INSERT ON ${sql.table(table)} BEGIN SELECT RAISE(ABORT, 'write failed'); END`.execute(db);
      } else {
        await sql`CREATE OR REPLACE FUNCTION fail_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'write failed'; END $$`.execute(db);
        await sql`CREATE TRIGGER fail_write BEFORE INSERT ON ${sql.table(table)} FOR EACH ROW EXECUTE FUNCTION fail_write()`.execute(db);
      }
      try {
        expect({ path, status: (await put()).statusCode }).toEqual({ path, status: 500 });
      } finally {
        await sql`DROP TRIGGER fail_write${sql.raw(backend === 'embedded' ? '' : ` ON ${table}`)}`.execute(db);
      }
      // Before, the account was created ahead of the transaction that failed.
      expect({ path, account: await server.services.accounts.byWallet(fresh) }).toEqual({ path, account: undefined });
      // The same write once the store answers prepares the account, with the value set.
      const res = await put();
      expect({ path, status: res.statusCode }).toEqual({ path, status: 200 });
      const account = await server.services.accounts.byWallet(fresh);
      expect(account).toMatchObject({ role: 'trader', chain: 'ethereum' });
      expect(await db.selectFrom(table).select('account_id').where('account_id', '=', account!.id).execute()).toHaveLength(1);
    }
  });

  it('writes preparing the same new account at once all succeed, on one account', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const fresh = ethereumWallet().address;
    const put = (path: string, payload: object) => server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${fresh}/${path}`, headers: admin.headers, payload });
    const answers = await Promise.all([put('trading-limit', { dailyNotional: '500' }), put('open-orders-limit', { maxOpenOrders: 7 }), put('withdrawal-tier', { tier: 1 }), put('trading-limit', { dailyNotional: '600' })]);
    expect(answers.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
    const wallet = fresh.toLowerCase();
    expect(await server.services.store.db.selectFrom('accounts').select('id').where('wallet', '=', wallet).execute()).toHaveLength(1);
  });
});
