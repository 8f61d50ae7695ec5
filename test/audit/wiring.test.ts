import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

async function settle() {
  await (server.services.audit as unknown as { settle?: () => Promise<void> }).settle?.();
}

describe('admin actions are audited in the transaction of the change', () => {
  it('a role change through the admin route is recorded once, with actor and outcome', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const target = await sessionFor(server);
    const res = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target.account.wallet}/role`, headers: admin.headers, payload: { role: 'developer' } });
    expect(res.statusCode).toBe(200);
    await settle();
    const { records } = await server.services.audit.list({ type: 'admin.role.changed', accountId: target.account.id }, { limit: 10 });
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ type: 'admin.role.changed', accountId: target.account.id, actorId: admin.account.id, outcome: 'success' });
    expect(records[0]!.details).toMatchObject({ from: 'trader', to: 'developer' });
    // …and not a second time from the security event.
    const other = await server.services.audit.list({ type: 'security.other', accountId: target.account.id }, { limit: 10 });
    expect(other.records).toHaveLength(0);
  });

  it('two role changes racing are both recorded, each from the role it really replaced', async () => {
    const target = await sessionFor(server, { role: 'admin' });
    // Both read the account as admin; the first demotes it, the second makes it admin again.
    await Promise.all([server.services.accounts.setRole(target.account.wallet, 'trader', 'admin_a'), server.services.accounts.setRole(target.account.wallet, 'admin', 'admin_b')]);
    await settle();
    expect((await server.services.accounts.byId(target.account.id))!.role).toBe('admin');
    const { records } = await server.services.audit.list({ type: 'admin.role.changed', accountId: target.account.id }, { limit: 10 });
    const changes = records.map((r) => r.details).filter((d) => d?.by === 'admin_a' || d?.by === 'admin_b');
    // The promotion back to admin is a privilege change: it must be in the trail, from trader.
    expect(changes).toEqual(expect.arrayContaining([expect.objectContaining({ from: 'admin', to: 'trader', by: 'admin_a' }), expect.objectContaining({ from: 'trader', to: 'admin', by: 'admin_b' })]));
    expect(changes).toHaveLength(2);
  });

  it('a role change that fails to commit leaves neither the change nor its record', async () => {
    const target = await sessionFor(server);
    const before = (await server.services.audit.list({ type: 'admin.role.changed' }, { limit: 100 })).records.length;
    // Make the audit append fail inside the transaction: the role update must roll back with it.
    const audit = server.services.audit as unknown as { recordIn: (...a: unknown[]) => Promise<unknown> };
    const original = audit.recordIn;
    audit.recordIn = async () => {
      throw new Error('audit store unavailable');
    };
    try {
      await expect(server.services.accounts.setRole(target.account.wallet, 'admin', 'test')).rejects.toThrow('audit store unavailable');
    } finally {
      audit.recordIn = original;
    }
    expect((await server.services.accounts.byId(target.account.id))!.role).toBe('trader');
    expect((await server.services.audit.list({ type: 'admin.role.changed' }, { limit: 100 })).records.length).toBe(before);
  });
});

describe('trading is audited in the order transaction', () => {
  it('records each order, cancel and fill with the account and the session or key that did it', async () => {
    const { listMoon, fund, USDC, MOON } = await import('../support/trading.js');
    await listMoon(server.services.trading);
    const maker = await sessionFor(server);
    const taker = await sessionFor(server);
    await fund(server.services.trading, maker.account.id, 'MOON', MOON(100));
    await fund(server.services.trading, taker.account.id, 'USDC', USDC(1000));
    const place = (s: typeof maker, body: Record<string, unknown>) =>
      server.app.inject({ method: 'POST', url: '/api/v1/trading/orders', headers: s.headers, payload: body });
    const resting = await place(maker, { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '2.5', quantity: '10' });
    expect(resting.statusCode).toBeLessThan(300);
    const other = await place(maker, { market: 'MOON-USDC', side: 'sell', type: 'limit', price: '3', quantity: '5' });
    const taken = await place(taker, { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '2.5', quantity: '4', timeInForce: 'IOC' });
    expect(taken.statusCode).toBeLessThan(300);
    const cancel = await server.app.inject({ method: 'DELETE', url: `/api/v1/trading/orders/${other.json().id}`, headers: maker.headers });
    expect(cancel.statusCode).toBe(200);
    await settle();

    const placed = (await server.services.audit.list({ type: 'trading.order.placed', accountId: maker.account.id }, { limit: 10 })).records;
    expect(placed).toHaveLength(2);
    expect(placed.find((r) => r.details?.orderId === resting.json().id)).toMatchObject({
      accountId: maker.account.id,
      actorId: maker.account.id,
      details: { market: 'MOON-USDC', side: 'sell', orderType: 'limit', price: '2.5', quantity: '10', via: 'session', sessionId: maker.sessionId },
    });
    const fills = (await server.services.audit.list({ type: 'trading.fill', accountId: taker.account.id }, { limit: 10 })).records;
    expect(fills).toHaveLength(1);
    expect(fills[0]!.details).toMatchObject({ orderId: taken.json().id, makerOrderId: resting.json().id, makerAccountId: maker.account.id, price: '2.5', quantity: '4', side: 'buy' });
    // The maker took part in the trade too: the auditor's account filter finds it on both sides.
    const makerFills = (await server.services.audit.list({ type: 'trading.fill', accountId: maker.account.id }, { limit: 10 })).records;
    expect(makerFills).toHaveLength(1);
    expect(makerFills[0]).toMatchObject({ accountId: maker.account.id, actorId: null });
    expect(makerFills[0]!.details).toMatchObject({ fillId: fills[0]!.details!.fillId, orderId: resting.json().id, liquidity: 'maker', side: 'sell', price: '2.5', quantity: '4', takerOrderId: taken.json().id, takerAccountId: taker.account.id });
    const cancelled = (await server.services.audit.list({ type: 'trading.order.cancelled', accountId: maker.account.id }, { limit: 10 })).records;
    expect(cancelled).toHaveLength(1);
    expect(cancelled[0]!.details).toMatchObject({ orderId: other.json().id, reason: 'user', cancelledQuantity: '5' });
    expect((await server.services.audit.verify()).ok).toBe(true);
  });
});

describe('rate-limit and block administration is audited in its transaction', () => {
  it('partner limits and IP blocks, once each, with the admin as actor', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const partner = await sessionFor(server);
    const limits = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${partner.account.wallet}/limits`, headers: admin.headers, payload: { trading: 500 } });
    expect(limits.statusCode).toBe(200);
    const block = await server.app.inject({ method: 'POST', url: '/api/v1/admin/ip-blocks', headers: admin.headers, payload: { target: '198.51.100.0/24', reason: 'scraping' } });
    expect(block.statusCode).toBe(201);
    const unblock = await server.app.inject({ method: 'DELETE', url: '/api/v1/admin/ip-blocks?target=198.51.100.0/24', headers: admin.headers });
    expect(unblock.statusCode).toBe(204);
    await settle();

    const changed = (await server.services.audit.list({ type: 'admin.limits.changed', accountId: partner.account.id }, { limit: 10 })).records;
    expect(changed).toHaveLength(1);
    expect(changed[0]).toMatchObject({ actorId: admin.account.id, details: { limits: { trading: 500, market: null } } });
    const blocked = (await server.services.audit.list({ type: 'admin.ip.blocked' }, { limit: 10 })).records.filter((r) => r.details?.target === '198.51.100.0/24');
    const unblocked = (await server.services.audit.list({ type: 'admin.ip.unblocked' }, { limit: 10 })).records.filter((r) => r.details?.target === '198.51.100.0/24');
    expect(blocked).toHaveLength(1);
    expect(unblocked).toHaveLength(1);
    expect(blocked[0]).toMatchObject({ actorId: admin.account.id, details: { reason: 'scraping' } });
    // Not a second time through the security-event stream.
    expect((await server.services.audit.list({ type: 'security.other' }, { limit: 100 })).records.filter((r) => r.details?.event === 'ratelimit.limits_changed')).toHaveLength(0);
  });
});

describe('key management is audited in its transaction', () => {
  it('create, suspend by an admin, revoke: one record each, naming who did it', async () => {
    const owner = await sessionFor(server);
    const admin = await sessionFor(server, { role: 'admin' });
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'bot', scopes: ['market:read'] } });
    expect(created.statusCode).toBe(201);
    const keyId = created.json().id as string;
    expect((await server.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${keyId}/suspend`, headers: admin.headers, payload: { reason: 'test' } })).statusCode).toBe(200);
    expect((await server.app.inject({ method: 'DELETE', url: `/api/v1/keys/${keyId}`, headers: owner.headers })).statusCode).toBe(200);
    await settle();
    const forKey = async (type: string) => (await server.services.audit.list({ type, accountId: owner.account.id }, { limit: 20 })).records.filter((r) => r.details?.keyId === keyId);
    expect(await forKey('admin.key.created')).toHaveLength(1);
    const suspended = await forKey('admin.key.suspended');
    expect(suspended).toHaveLength(1);
    expect(suspended[0]!.actorId).toBe(admin.account.id);
    // Why: shown to the owner while suspended, and erased by unsuspending; the trail keeps it.
    expect(suspended[0]!.details).toMatchObject({ keyId, by: admin.account.id, reason: 'test' });
    const revoked = await forKey('admin.key.revoked');
    expect(revoked).toHaveLength(1);
    expect(revoked[0]!.actorId).toBe(owner.account.id);
    expect(JSON.stringify(await forKey('admin.key.created'))).not.toContain(created.json().apiSecret);
  });

  it('every key change names the session it was made with, so a stolen session’s keys can be traced', async () => {
    const owner = await sessionFor(server);
    const admin = await sessionFor(server, { role: 'admin' });
    const inject = (method: 'POST' | 'PATCH' | 'DELETE', url: string, headers: Record<string, string>, payload?: object) =>
      server.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
    const created = await inject('POST', '/api/v1/keys', owner.headers, { label: 'bot', scopes: ['market:read'] });
    expect(created.statusCode).toBe(201);
    const keyId = created.json().id as string;
    expect((await inject('PATCH', `/api/v1/keys/${keyId}`, owner.headers, { ipWhitelist: ['198.51.100.7'] })).statusCode).toBe(200);
    expect((await inject('POST', `/api/v1/keys/${keyId}/regenerate`, owner.headers, {})).statusCode).toBe(200);
    expect((await inject('POST', `/api/v1/admin/keys/${keyId}/suspend`, admin.headers, { reason: 'test' })).statusCode).toBe(200);
    expect((await inject('POST', `/api/v1/admin/keys/${keyId}/unsuspend`, admin.headers, {})).statusCode).toBe(200);
    expect((await inject('DELETE', `/api/v1/keys/${keyId}`, owner.headers)).statusCode).toBe(200);
    await settle();
    const forKey = async (type: string) => (await server.services.audit.list({ type, accountId: owner.account.id }, { limit: 20 })).records.filter((r) => r.details?.keyId === keyId);
    for (const type of ['admin.key.created', 'admin.key.updated', 'admin.key.regenerated', 'admin.key.revoked']) {
      const rows = await forKey(type);
      expect(rows, type).toHaveLength(1);
      expect(rows[0]!.details, type).toMatchObject({ via: 'session', sessionId: owner.sessionId });
    }
    for (const type of ['admin.key.suspended', 'admin.key.unsuspended']) {
      const rows = await forKey(type);
      expect(rows, type).toHaveLength(1);
      expect(rows[0]!.details, type).toMatchObject({ via: 'session', sessionId: admin.sessionId });
    }
  });

  it('a key’s creation and each change of its security settings record what was set (from → to)', async () => {
    const owner = await sessionFor(server);
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'bot', scopes: ['orders:read', 'orders:write'], ipWhitelist: ['198.51.100.7'], allowedCountries: ['de'] } });
    expect(created.statusCode).toBe(201);
    const keyId = created.json().id as string;
    const patch = (payload: object) => server.app.inject({ method: 'PATCH', url: `/api/v1/keys/${keyId}`, headers: owner.headers, payload });
    expect((await patch({ ipWhitelist: [], allowedCountries: [] })).statusCode).toBe(200);
    expect((await patch({ scopes: ['orders:read'], label: 'reader' })).statusCode).toBe(200);
    // Refused: changes nothing and records nothing.
    expect((await patch({ scopes: ['orders:read', 'orders:write'] })).statusCode).toBe(400);
    await settle();
    const forKey = async (type: string) => (await server.services.audit.list({ type, accountId: owner.account.id }, { limit: 20 })).records.filter((r) => r.details?.keyId === keyId);
    expect((await forKey('admin.key.created'))[0]!.details).toMatchObject({ type: 'hmac', scopes: ['orders:read', 'orders:write'], ipWhitelist: ['198.51.100.7'], allowedCountries: ['DE'] });
    const updates = (await forKey('admin.key.updated')).map((r) => r.details?.changes);
    expect(updates).toHaveLength(2);
    expect(updates).toEqual(
      expect.arrayContaining([
        { ipWhitelist: { from: ['198.51.100.7'], to: [] }, allowedCountries: { from: ['DE'], to: [] } },
        { scopes: { from: ['orders:read', 'orders:write'], to: ['orders:read'] }, label: { from: 'bot', to: 'reader' } },
      ]),
    );
  });
});

describe('trading administration is audited in its transaction', () => {
  it('asset creation, market listing and delisting, trading-limit and open-orders-limit overrides: one record each, naming the admin', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const target = await sessionFor(server);
    const inject = (method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => server.app.inject({ method, url, headers: admin.headers, ...(payload ? { payload } : {}) });
    expect((await inject('POST', '/api/v1/admin/assets', { symbol: 'AUDX', name: 'Audited', decimals: 6 })).statusCode).toBe(201);
    expect((await inject('POST', '/api/v1/admin/assets', { symbol: 'AUDX', name: 'Again', decimals: 6 })).json().code).toBe('conflict');
    const terms = { base: 'AUDX', quote: 'USDC', tickSize: '0.01', lotSize: '1', minNotional: '1' };
    expect((await inject('POST', '/api/v1/admin/markets', terms)).statusCode).toBe(201);
    expect((await inject('POST', '/api/v1/admin/markets', terms)).json().code).toBe('conflict');
    expect((await inject('DELETE', '/api/v1/admin/markets/AUDX-USDC')).json()).toEqual({ market: 'AUDX-USDC', cancelled: 0 });
    expect((await inject('POST', '/api/v1/admin/markets', { ...terms, tickSize: '0.1' })).statusCode).toBe(201);
    expect((await inject('PUT', `/api/v1/admin/accounts/${target.account.wallet}/trading-limit`, { dailyNotional: '250.5' })).statusCode).toBe(200);
    expect((await inject('PUT', `/api/v1/admin/accounts/${target.account.wallet}/trading-limit`, { dailyNotional: null })).statusCode).toBe(200);
    expect((await inject('PUT', `/api/v1/admin/accounts/${target.account.wallet}/open-orders-limit`, { maxOpenOrders: 1000 })).statusCode).toBe(200);
    expect((await inject('PUT', `/api/v1/admin/accounts/${target.account.wallet}/open-orders-limit`, { maxOpenOrders: 1000 })).statusCode).toBe(200); // no change: no record
    expect((await inject('PUT', `/api/v1/admin/accounts/${target.account.wallet}/open-orders-limit`, { maxOpenOrders: 0 })).statusCode).toBe(400); // refused: no record
    expect((await inject('PUT', `/api/v1/admin/accounts/${target.account.wallet}/open-orders-limit`, { maxOpenOrders: null })).statusCode).toBe(200);
    await settle();

    const of = async (type: string) => (await server.services.audit.list({ type }, { limit: 100 })).records;
    const created = (await of('admin.asset.created')).filter((r) => r.details?.symbol === 'AUDX');
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ actorId: admin.account.id, details: { name: 'Audited', decimals: 6, faucet: false } });
    const listed = (await of('admin.market.listed')).filter((r) => r.details?.market === 'AUDX-USDC');
    expect(listed.map((r) => [r.details?.tickSize, r.details?.relisted])).toEqual(expect.arrayContaining([['0.01', false], ['0.1', true]]));
    expect(listed).toHaveLength(2);
    expect(listed.every((r) => r.actorId === admin.account.id)).toBe(true);
    const delisted = (await of('admin.market.delisted')).filter((r) => r.details?.market === 'AUDX-USDC');
    expect(delisted).toHaveLength(1);
    expect(delisted[0]).toMatchObject({ actorId: admin.account.id, details: { cancelled: 0, via: 'admin', sessionId: admin.sessionId } });
    const limits = (await server.services.audit.list({ type: 'admin.trading_limit.changed', accountId: target.account.id }, { limit: 10 })).records;
    expect(limits.map((r) => [r.details?.from, r.details?.to])).toEqual(expect.arrayContaining([[null, '250.5'], ['250.5', null]]));
    expect(limits).toHaveLength(2);
    expect(limits.every((r) => r.actorId === admin.account.id)).toBe(true);
    const caps = (await server.services.audit.list({ type: 'admin.open_orders_limit.changed', accountId: target.account.id }, { limit: 10 })).records;
    expect(caps.map((r) => [r.details?.from, r.details?.to])).toEqual(expect.arrayContaining([[null, 1000], [1000, null]]));
    expect(caps).toHaveLength(2);
    expect(caps.every((r) => r.actorId === admin.account.id)).toBe(true);
    // Each names the session it was done with, as the asset and market records do.
    for (const r of [...created, ...listed, ...limits, ...caps]) expect(r.details).toMatchObject({ via: 'session', sessionId: admin.sessionId });
    expect((await server.services.audit.verify()).ok).toBe(true);
  });
});

describe('sandbox faucet grants are audited in their transaction', () => {
  it('one trading.faucet record per grant, none for a refused one', async () => {
    const s = await sessionFor(server);
    const grant = (amount: string) => server.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: s.headers, payload: { asset: 'USDC', amount } });
    expect((await grant('12.5')).statusCode).toBe(200);
    expect((await grant('1000000')).statusCode).toBe(400);
    await settle();
    const records = (await server.services.audit.list({ type: 'trading.faucet', accountId: s.account.id }, { limit: 10 })).records;
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ accountId: s.account.id, actorId: s.account.id, details: { asset: 'USDC', amount: '12.5', via: 'session', sessionId: s.sessionId } });
  });
});
