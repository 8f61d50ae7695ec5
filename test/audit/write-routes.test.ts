import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { writeRoutesServer, type Session } from './support.js';
import { sessionFor } from '../support/auth.js';
import type { TestServer } from '../support/server.js';
import { signInEthereum } from '../support/wallet.js';

/**
 * The product promise: every request that can change state is in the audit trail with who did it
 * (the account acting, and the session or API key used). Each write route of /openapi.json is
 * called once, successfully, and must leave a domain record naming the actor and how it acted.
 */
const DEST = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';

/** Write routes whose only record is the access event, and why that is right. */
const ACCESS_ONLY: Record<string, string> = {};

/**
 * Session revocations by another session: details.sessionId names the session revoked (the
 * security-event shape auditors filter on), and details.bySessionId the session that revoked it.
 */
const REVOKES_ANOTHER_SESSION = new Set(['DELETE /api/v1/security/sessions/{id}', 'POST /api/v1/admin/accounts/{address}/revoke-sessions']);

interface Case {
  /** Performs the call; returns the response and the session that made it. */
  call: () => Promise<{ res: { statusCode: number; body: string }; by: Session | { account: { id: string }; sessionId: string }; revoked?: string }>;
  type: string;
  /** The account the record must concern (default: the caller's). */
  on?: () => string | null;
}

describe('every write route is audited with its actor', () => {
  let server: TestServer;
  let admin: Session;
  let trader: Session;
  let req: Awaited<ReturnType<typeof writeRoutesServer>>['req'];
  let fresh: Awaited<ReturnType<typeof writeRoutesServer>>['fresh'];
  let restingBuy: Awaited<ReturnType<typeof writeRoutesServer>>['restingBuy'];
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  const state: Record<string, string> = {};

  beforeAll(async () => {
    ({ server, req, fresh, restingBuy, admin, trader } = await writeRoutesServer(clock));
  });
  afterAll(() => server?.close());

  const cases: Record<string, Case> = {
    'POST /api/v1/auth/login': {
      type: 'auth.signin.succeeded',
      call: async () => {
        const s = await signInEthereum(server);
        state.refresh = s.refreshToken;
        return { res: { statusCode: 200, body: '' }, by: s };
      },
    },
    'POST /api/v1/auth/refresh': {
      type: 'auth.token.refreshed',
      call: async () => {
        const s = await signInEthereum(server);
        const res = await server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: s.refreshToken } });
        return { res, by: s };
      },
    },
    'POST /api/v1/auth/logout': {
      type: 'auth.session.revoked',
      call: async () => {
        const s = await signInEthereum(server);
        return { res: await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers }), by: s };
      },
    },
    'DELETE /api/v1/security/sessions/{id}': {
      type: 'auth.session.revoked',
      call: async () => {
        const s = await signInEthereum(server);
        const other = await signInEthereum(server, s.wallet.privateKey);
        return { res: await server.app.inject({ method: 'DELETE', url: `/api/v1/security/sessions/${other.sessionId}`, headers: s.headers }), by: s, revoked: other.sessionId };
      },
    },
    'PUT /api/v1/admin/accounts/{address}/role': {
      type: 'admin.role.changed',
      on: () => state.roleTarget!,
      call: async () => {
        const t = await sessionFor(server);
        state.roleTarget = t.account.id;
        return { res: await req('PUT', `/api/v1/admin/accounts/${t.account.wallet}/role`, admin, { role: 'developer' }), by: admin };
      },
    },
    'POST /api/v1/admin/accounts/{address}/revoke-sessions': {
      type: 'auth.session.revoked',
      on: () => state.revokeTarget!,
      call: async () => {
        const t = await signInEthereum(server);
        state.revokeTarget = t.account.id;
        return { res: await req('POST', `/api/v1/admin/accounts/${t.account.wallet}/revoke-sessions`, admin), by: admin, revoked: t.sessionId };
      },
    },
    'POST /api/v1/keys': {
      type: 'admin.key.created',
      call: async () => {
        const res = await req('POST', '/api/v1/keys', trader, { label: 'bot', scopes: ['market:read', 'orders:write'] });
        state.keyId = res.json().id ?? res.json().key?.id;
        return { res, by: trader };
      },
    },
    'PATCH /api/v1/keys/{id}': { type: 'admin.key.updated', call: async () => ({ res: await req('PATCH', `/api/v1/keys/${state.keyId}`, trader, { label: 'bot2' }), by: trader }) },
    'POST /api/v1/keys/{id}/regenerate': { type: 'admin.key.regenerated', call: async () => ({ res: await req('POST', `/api/v1/keys/${state.keyId}/regenerate`, trader, {}), by: trader }) },
    'POST /api/v1/admin/keys/{id}/suspend': { type: 'admin.key.suspended', on: () => trader.account.id, call: async () => ({ res: await req('POST', `/api/v1/admin/keys/${state.keyId}/suspend`, admin, {}), by: admin }) },
    'POST /api/v1/admin/keys/{id}/unsuspend': { type: 'admin.key.unsuspended', on: () => trader.account.id, call: async () => ({ res: await req('POST', `/api/v1/admin/keys/${state.keyId}/unsuspend`, admin, {}), by: admin }) },
    'DELETE /api/v1/keys/{id}': { type: 'admin.key.revoked', call: async () => ({ res: await req('DELETE', `/api/v1/keys/${state.keyId}`, trader), by: trader }) },
    'POST /api/v1/admin/ip-blocks': { type: 'admin.ip.blocked', on: () => null, call: async () => ({ res: await req('POST', '/api/v1/admin/ip-blocks', admin, { target: '198.51.100.7' }), by: admin }) },
    'DELETE /api/v1/admin/ip-blocks': { type: 'admin.ip.unblocked', on: () => null, call: async () => ({ res: await req('DELETE', '/api/v1/admin/ip-blocks?target=198.51.100.7', admin), by: admin }) },
    'PUT /api/v1/admin/accounts/{address}/limits': {
      type: 'admin.limits.changed',
      on: () => trader.account.id,
      call: async () => ({ res: await req('PUT', `/api/v1/admin/accounts/${trader.account.wallet}/limits`, admin, { account: 10_000, tokens: 10_000, trading: 10_000 }), by: admin }),
    },
    'POST /api/v1/admin/assets': { type: 'admin.asset.created', on: () => null, call: async () => ({ res: await req('POST', '/api/v1/admin/assets', admin, { symbol: 'MOON', name: 'Moon', decimals: 6, faucet: true }), by: admin }) },
    'POST /api/v1/admin/markets': {
      type: 'admin.market.listed',
      on: () => null,
      call: async () => ({ res: await req('POST', '/api/v1/admin/markets', admin, { base: 'MOON', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1' }), by: admin }),
    },
    'POST /api/v1/sandbox/faucet': { type: 'trading.faucet', call: async () => ({ res: await req('POST', '/api/v1/sandbox/faucet', trader, { asset: 'MOON', amount: '100' }), by: trader }) },
    'POST /api/v1/trading/orders': {
      type: 'trading.order.placed',
      call: async () => {
        const res = await req('POST', '/api/v1/trading/orders', trader, { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '5' });
        state.orderId = res.json().id ?? res.json().order?.id;
        return { res, by: trader };
      },
    },
    'DELETE /api/v1/trading/orders/{id}': { type: 'trading.order.cancelled', call: async () => ({ res: await req('DELETE', `/api/v1/trading/orders/${state.orderId}`, trader), by: trader }) },
    'DELETE /api/v1/trading/orders': {
      type: 'trading.order.cancelled',
      call: async () => {
        await req('POST', '/api/v1/trading/orders', trader, { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '5' });
        return { res: await req('DELETE', '/api/v1/trading/orders', trader), by: trader };
      },
    },
    'POST /api/v1/trading/positions/{asset}/close': {
      type: 'trading.order.placed',
      call: async () => {
        await restingBuy();
        return { res: await req('POST', '/api/v1/trading/positions/MOON/close', trader, {}), by: trader };
      },
    },
    'PUT /api/v1/admin/accounts/{address}/trading-limit': {
      type: 'admin.trading_limit.changed',
      on: () => trader.account.id,
      call: async () => ({ res: await req('PUT', `/api/v1/admin/accounts/${trader.account.wallet}/trading-limit`, admin, { dailyNotional: '50000' }), by: admin }),
    },
    'PUT /api/v1/admin/accounts/{address}/open-orders-limit': {
      type: 'admin.open_orders_limit.changed',
      on: () => trader.account.id,
      call: async () => ({ res: await req('PUT', `/api/v1/admin/accounts/${trader.account.wallet}/open-orders-limit`, admin, { maxOpenOrders: 500 }), by: admin }),
    },
    'DELETE /api/v1/admin/markets/{market}': { type: 'admin.market.delisted', on: () => null, call: async () => ({ res: await req('DELETE', '/api/v1/admin/markets/MOON-USDC', admin), by: admin }) },
    'POST /api/v1/tokens': {
      type: 'trading.token.created',
      call: async () => ({ res: await req('POST', '/api/v1/tokens', trader, { name: 'Star', symbol: 'STAR', decimals: 6, supply: '1000' }), by: trader }),
    },
    'PATCH /api/v1/tokens/{symbol}': { type: 'trading.token.updated', call: async () => ({ res: await req('PATCH', '/api/v1/tokens/STAR', trader, { description: 'bright' }), by: trader }) },
    'PUT /api/v1/admin/accounts/{address}/withdrawal-tier': {
      type: 'admin.withdrawal_tier.changed',
      on: () => trader.account.id,
      call: async () => ({ res: await req('PUT', `/api/v1/admin/accounts/${trader.account.wallet}/withdrawal-tier`, admin, { tier: 1 }), by: admin }),
    },
    'PUT /api/v1/account/withdrawal-addresses/settings': {
      type: 'trading.withdrawal.address_book',
      call: async () => ({ res: await req('PUT', '/api/v1/account/withdrawal-addresses/settings', trader, { enabled: true }), by: trader }),
    },
    'POST /api/v1/account/withdrawal-addresses': {
      type: 'trading.withdrawal.address_added',
      call: async () => {
        const res = await req('POST', '/api/v1/account/withdrawal-addresses', trader, { chain: 'evm', address: DEST });
        state.addressId = res.json().id;
        clock.advance(25 * 3600_000);
        trader = await sessionFor(server, { wallet: trader.account.wallet });
        admin = await sessionFor(server, { wallet: admin.account.wallet });
        return { res, by: { account: trader.account, sessionId: res.statusCode === 201 ? state.addrSession ?? '' : '' } };
      },
    },
    'POST /api/v1/account/withdrawals': {
      type: 'trading.withdrawal.requested',
      call: async () => {
        const res = await req('POST', '/api/v1/account/withdrawals', trader, { asset: 'USDC', amount: '10', address: DEST });
        state.w1 = res.json().id;
        return { res, by: trader };
      },
    },
    'POST /api/v1/account/withdrawals/{id}/cancel': {
      type: 'trading.withdrawal.updated',
      call: async () => {
        const res0 = await req('POST', '/api/v1/account/withdrawals', trader, { asset: 'USDC', amount: '5000', address: DEST });
        return { res: await req('POST', `/api/v1/account/withdrawals/${res0.json().id}/cancel`, trader, {}), by: trader };
      },
    },
    'POST /api/v1/admin/withdrawals/{id}/approve': {
      type: 'admin.withdrawal.approved',
      on: () => trader.account.id,
      call: async () => {
        const res0 = await req('POST', '/api/v1/account/withdrawals', trader, { asset: 'USDC', amount: '5000', address: DEST });
        return { res: await req('POST', `/api/v1/admin/withdrawals/${res0.json().id}/approve`, admin, {}), by: admin };
      },
    },
    'POST /api/v1/admin/withdrawals/{id}/reject': {
      type: 'admin.withdrawal.rejected',
      on: () => trader.account.id,
      call: async () => {
        const res0 = await req('POST', '/api/v1/account/withdrawals', trader, { asset: 'USDC', amount: '5000', address: DEST });
        return { res: await req('POST', `/api/v1/admin/withdrawals/${res0.json().id}/reject`, admin, { reason: 'no' }), by: admin };
      },
    },
    'DELETE /api/v1/account/withdrawal-addresses/{id}': {
      type: 'trading.withdrawal.address_removed',
      call: async () => ({ res: await req('DELETE', `/api/v1/account/withdrawal-addresses/${state.addressId}`, trader), by: trader }),
    },
  };

  it('covers every write route of /openapi.json, and each success leaves a domain record naming its actor and session', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const routes: string[] = [];
    for (const [p, ops] of Object.entries<Record<string, unknown>>(doc.paths)) {
      for (const m of Object.keys(ops)) if (['post', 'put', 'patch', 'delete'].includes(m) && p.startsWith('/api/v1/')) routes.push(`${m.toUpperCase()} ${p}`);
    }
    const uncovered = routes.filter((r) => !(r in cases) && !(r in ACCESS_ONLY) && r !== 'POST /api/v1/auth/challenge');
    expect(uncovered).toEqual([]);

    const problems: string[] = [];
    for (const [route, c] of Object.entries(cases)) {
      await server.services.audit.settle();
      const before = Number((await server.services.store.db.selectFrom('audit_events').select((eb) => eb.fn.max('seq').as('m')).executeTakeFirst())?.m ?? 0);
      const { res, by, revoked } = await c.call();
      if (res.statusCode >= 300) {
        problems.push(`${route}: call failed ${res.statusCode} ${res.body}`);
        continue;
      }
      await server.services.audit.settle();
      const records = [];
      for await (const v of server.services.audit.export({ type: c.type as never })) if (v.seq > before) records.push(v);
      const target = c.on ? c.on() : by.account.id;
      const mine = records.filter((r) => (target === null ? true : r.accountId === target));
      if (mine.length === 0) {
        problems.push(`${route}: no ${c.type} record for ${target}`);
        continue;
      }
      const d = mine[0]!.details as Record<string, unknown>;
      const actor = mine[0]!.actorId;
      if (REVOKES_ANOTHER_SESSION.has(route)) {
        if (actor !== by.account.id) problems.push(`${route}: ${c.type} actorId ${actor}, not ${by.account.id}`);
        if (d.sessionId !== revoked || d.bySessionId !== by.sessionId) problems.push(`${route}: ${c.type} without sessionId of the revoked session and bySessionId of the acting one (${JSON.stringify(d)})`);
        continue;
      }
      if (actor !== by.account.id && !(route.startsWith('POST /api/v1/auth/') && route !== 'POST /api/v1/auth/logout' && mine[0]!.accountId === by.account.id)) problems.push(`${route}: ${c.type} actorId ${actor}, not ${by.account.id}`);
      if (!route.startsWith('POST /api/v1/auth/') && route !== 'POST /api/v1/account/withdrawal-addresses' && (!['session', 'admin'].includes(d.via as string) || d.sessionId !== by.sessionId)) problems.push(`${route}: ${c.type} without via/sessionId of the acting session (${JSON.stringify(d)})`);
    }
    expect(problems).toEqual([]);
  });

  it('a refused write leaves no domain record, only the access event', async () => {
    const other = await fresh();
    const refused: [string, string, Session, unknown?][] = [
      ['PUT', `/api/v1/admin/accounts/${other.account.wallet}/role`, trader, { role: 'admin' }],
      ['PUT', `/api/v1/admin/accounts/${admin.account.wallet}/role`, admin, { role: 'trader' }],
      ['PUT', `/api/v1/admin/accounts/${admin.account.wallet}/limits`, admin, { account: 1 }],
      ['POST', '/api/v1/admin/ip-blocks', trader, { target: '198.51.100.9' }],
      ['POST', '/api/v1/account/withdrawals', other, { asset: 'USDC', amount: '10', address: DEST }],
      ['POST', '/api/v1/sandbox/faucet', other, { asset: 'NOPE', amount: '1' }],
      ['POST', '/api/v1/tokens', other, { name: 'Star', symbol: 'STAR', decimals: 6, supply: '1000' }],
      ['DELETE', '/api/v1/keys/key_01KQHPHXG065Q0NEE4A54M3FC8', other],
    ];
    for (const [method, url, s, body] of refused) {
      await server.services.audit.settle();
      const before = Number((await server.services.store.db.selectFrom('audit_events').select((eb) => eb.fn.max('seq').as('m')).executeTakeFirst())?.m ?? 0);
      const res = await req(method, url, s, body);
      expect(res.statusCode, `${method} ${url}`).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, `${method} ${url}`).toBeLessThan(500);
      await server.services.audit.settle();
      const after = await server.services.store.db.selectFrom('audit_events').select(['type', 'outcome']).where('seq', '>', before).execute();
      expect(after.filter((r) => !r.type.startsWith('access.') && r.outcome === 'success'), `${method} ${url}`).toEqual([]);
    }
  });
});
