import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { writeRoutesServer, type Session } from './support.js';
import { createKey, credentialOf, signed, type Credential, type KeysTestServer } from '../keys/support.js';
import type { TestServer } from '../support/server.js';

/**
 * The sibling of write-routes.test.ts for API keys: every write route that /openapi.json says an
 * API key may call (its security names `apiKey`) is called once, successfully, with a signed HMAC
 * key, and must leave a domain record naming the account (actorId) and the key it acted through
 * (details.via 'apiKey', details.keyId), never a session.
 */
const DEST = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';

interface Case {
  call: () => Promise<{ statusCode: number; body: string }>;
  type: string;
}

describe('every write route an API key may call is audited with the key', () => {
  let server: TestServer;
  let ks: KeysTestServer;
  let admin: Session;
  let trader: Session;
  let cred: Credential;
  let keyId: string;
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  let req: Awaited<ReturnType<typeof writeRoutesServer>>['req'];
  let restingBuy: Awaited<ReturnType<typeof writeRoutesServer>>['restingBuy'];
  const call = (method: string, url: string, body?: unknown) => signed(ks, cred, { method, url, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const state: Record<string, string> = {};

  beforeAll(async () => {
    ({ server, req, restingBuy, admin, trader } = await writeRoutesServer(clock));
    ks = { server, app: server.app, close: () => server.close() };
    expect((await req('POST', '/api/v1/admin/assets', admin, { symbol: 'MOON', name: 'Moon', decimals: 6, faucet: true })).statusCode).toBe(201);
    expect((await req('POST', '/api/v1/admin/markets', admin, { base: 'MOON', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1' })).statusCode).toBeLessThan(300);
    expect((await req('PUT', `/api/v1/admin/accounts/${trader.account.wallet}/withdrawal-tier`, admin, { tier: 1 })).statusCode).toBe(200);
    const key = await createKey(ks, trader.headers, {
      label: 'bot',
      ipWhitelist: ['127.0.0.1'],
      scopes: ['market:read', 'account:read', 'orders:read', 'orders:write', 'positions:write', 'withdrawals:write', 'tokens:write'],
    });
    cred = credentialOf(key);
    keyId = key.id;
  });
  afterAll(() => server?.close());

  const cases: Record<string, Case> = {
    'POST /api/v1/sandbox/faucet': { type: 'trading.faucet', call: () => call('POST', '/api/v1/sandbox/faucet', { asset: 'MOON', amount: '100' }) },
    'POST /api/v1/trading/orders': {
      type: 'trading.order.placed',
      call: async () => {
        const res = await call('POST', '/api/v1/trading/orders', { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '5' });
        state.orderId = res.json().id ?? res.json().order?.id;
        return res;
      },
    },
    'DELETE /api/v1/trading/orders/{id}': { type: 'trading.order.cancelled', call: () => call('DELETE', `/api/v1/trading/orders/${state.orderId}`) },
    'DELETE /api/v1/trading/orders': {
      type: 'trading.order.cancelled',
      call: async () => {
        await call('POST', '/api/v1/trading/orders', { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '5' });
        return call('DELETE', '/api/v1/trading/orders');
      },
    },
    'POST /api/v1/trading/positions/{asset}/close': {
      type: 'trading.order.placed',
      call: async () => {
        await restingBuy();
        return call('POST', '/api/v1/trading/positions/MOON/close', {});
      },
    },
    'POST /api/v1/tokens': { type: 'trading.token.created', call: () => call('POST', '/api/v1/tokens', { name: 'Star', symbol: 'STAR', decimals: 6, supply: '1000' }) },
    'PATCH /api/v1/tokens/{symbol}': { type: 'trading.token.updated', call: () => call('PATCH', '/api/v1/tokens/STAR', { description: 'bright' }) },
    'PUT /api/v1/account/withdrawal-addresses/settings': {
      type: 'trading.withdrawal.address_book',
      call: () => call('PUT', '/api/v1/account/withdrawal-addresses/settings', { enabled: true }),
    },
    'POST /api/v1/account/withdrawal-addresses': {
      type: 'trading.withdrawal.address_added',
      call: async () => {
        const res = await call('POST', '/api/v1/account/withdrawal-addresses', { chain: 'evm', address: DEST });
        state.addressId = res.json().id;
        clock.advance(25 * 3600_000);
        return res;
      },
    },
    'POST /api/v1/account/withdrawals': {
      type: 'trading.withdrawal.requested',
      call: () => call('POST', '/api/v1/account/withdrawals', { asset: 'USDC', amount: '10', address: DEST }),
    },
    'POST /api/v1/account/withdrawals/{id}/cancel': {
      type: 'trading.withdrawal.updated',
      call: async () => {
        const res0 = await call('POST', '/api/v1/account/withdrawals', { asset: 'USDC', amount: '5000', address: DEST });
        if (res0.statusCode >= 300) return res0;
        return call('POST', `/api/v1/account/withdrawals/${res0.json().id}/cancel`, {});
      },
    },
    'DELETE /api/v1/account/withdrawal-addresses/{id}': {
      type: 'trading.withdrawal.address_removed',
      call: () => call('DELETE', `/api/v1/account/withdrawal-addresses/${state.addressId}`),
    },
  };

  it('covers every write route an API key may call, and each success names the account and the key', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const routes: string[] = [];
    for (const [p, ops] of Object.entries<Record<string, { security?: Record<string, unknown>[] }>>(doc.paths)) {
      for (const [m, op] of Object.entries(ops)) {
        if (!['post', 'put', 'patch', 'delete'].includes(m) || !p.startsWith('/api/v1/')) continue;
        if ((op.security ?? []).some((s) => 'apiKey' in s)) routes.push(`${m.toUpperCase()} ${p}`);
      }
    }
    expect(routes.filter((r) => !(r in cases))).toEqual([]);

    const problems: string[] = [];
    for (const [route, c] of Object.entries(cases)) {
      await server.services.audit.settle();
      const before = Number((await server.services.store.db.selectFrom('audit_events').select((eb) => eb.fn.max('seq').as('m')).executeTakeFirst())?.m ?? 0);
      const res = await c.call();
      if (res.statusCode >= 300) {
        problems.push(`${route}: call failed ${res.statusCode} ${res.body}`);
        continue;
      }
      await server.services.audit.settle();
      const records = [];
      for await (const v of server.services.audit.export({ type: c.type as never })) if (v.seq > before && v.accountId === trader.account.id) records.push(v);
      if (records.length === 0) {
        problems.push(`${route}: no ${c.type} record for ${trader.account.id}`);
        continue;
      }
      for (const r of records) {
        const d = r.details as Record<string, unknown>;
        if (r.actorId !== trader.account.id) problems.push(`${route}: ${c.type} actorId ${r.actorId}, not ${trader.account.id}`);
        if (d.via !== 'apiKey' || d.keyId !== keyId || 'sessionId' in d) problems.push(`${route}: ${c.type} without via apiKey / keyId ${keyId} (${JSON.stringify(d)})`);
      }
    }
    expect(problems).toEqual([]);
  });
});
