/**
 * /openapi.json against what the server really answers. Drives the routes through a whole server
 * (sessions of each role, keys, trading, tokens, withdrawals, admin and audit routes) and holds
 * every JSON answer to the document it serves:
 *   - each answer's status is one the operation documents, and the answer (as sent) validates
 *     against that status's schema;
 *   - what the handler returned is what was sent: a field the schema does not name would be dropped
 *     in silence by the serializer, and a value of another type coerced (a null sent as "" or 0),
 *     so the document would describe an answer the handler never meant;
 *   - every documented operation is exercised at least once (a new route needs a line here).
 */
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { isDeepStrictEqual } from 'node:util';
import { sessionFor } from '../support/auth.js';
import { signInEthereum } from '../support/wallet.js';
import { startTestServer, type TestServer } from '../support/server.js';

interface Seen {
  method: string;
  route: string;
  status: number;
  /** What the handler returned, as JSON would carry it. */
  returned: unknown;
  /** What went out on the wire (after the response schema's serializer). */
  sent?: string;
}
const seen = vi.hoisted(() => [] as Seen[]);
vi.mock('fastify', async (orig) => {
  const actual = (await orig()) as { default: (o?: unknown) => import('fastify').FastifyInstance };
  const create = (options?: unknown) => {
    const app = actual.default(options);
    const pending = new WeakMap<object, Seen>();
    app.addHook('preSerialization', (request, reply, payload, done) => {
      const entry: Seen = { method: request.method, route: request.routeOptions.url ?? '', status: reply.statusCode, returned: JSON.parse(JSON.stringify(payload)) };
      pending.set(request, entry);
      seen.push(entry);
      done(null, payload);
    });
    app.addHook('onSend', (request, _reply, payload, done) => {
      const entry = pending.get(request);
      if (entry && typeof payload === 'string') entry.sent = payload;
      done(null, payload);
    });
    return app;
  };
  Object.assign(create, actual.default);
  return { ...actual, default: create, fastify: create };
});

let server: TestServer;
type Session = Awaited<ReturnType<typeof sessionFor>>;
const call = async (s: Session | undefined, method: string, url: string, payload?: unknown, headers: Record<string, string> = {}) => {
  const res = await server.app.inject({
    method: method as 'GET',
    url,
    headers: { ...(s?.headers ?? {}), ...headers },
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
  if (res.statusCode >= 400) throw new Error(`${method} ${url} → ${res.statusCode} ${res.body}`);
  return res.statusCode === 204 ? undefined : res.json();
};

beforeAll(async () => {
  server = await startTestServer();
  const admin = await sessionFor(server, { role: 'admin' });
  const admin2 = await sessionFor(server, { role: 'admin' });
  const auditor = await sessionFor(server, { role: 'auditor' });
  const alice = await sessionFor(server);
  const bob = await sessionFor(server);

  await call(undefined, 'GET', '/health');
  await call(undefined, 'GET', '/api/v1/time');
  await call(undefined, 'GET', '/.well-known/jwks.json');
  const signedIn = await signInEthereum(server);
  await call(undefined, 'POST', '/api/v1/auth/refresh', { refreshToken: signedIn.refreshToken });

  // Market set-up and funds.
  await call(admin, 'POST', '/api/v1/admin/assets', { symbol: 'MOON', name: 'Moon', decimals: 6 });
  await call(admin, 'POST', '/api/v1/admin/markets', { base: 'MOON', quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1', makerFeeBps: 10, takerFeeBps: 20 });
  await call(alice, 'POST', '/api/v1/sandbox/faucet', { asset: 'USDC', amount: '1000' });
  await call(bob, 'POST', '/api/v1/sandbox/faucet', { asset: 'USDC', amount: '1000' });

  // A token Alice launches, traded with Bob.
  await call(alice, 'POST', '/api/v1/tokens', { name: 'Doc Token', symbol: 'DOCT', decimals: 6, supply: '1000000' });
  await call(alice, 'PATCH', '/api/v1/tokens/DOCT', { website: 'https://example.com' });
  await call(alice, 'GET', '/api/v1/tokens?mine=true');
  await call(bob, 'GET', '/api/v1/tokens/DOCT');
  const ask = await call(alice, 'POST', '/api/v1/trading/orders', { market: 'DOCT-USDC', side: 'sell', type: 'limit', price: '0.5', quantity: '100', clientOrderId: 'ask-1' });
  await call(alice, 'POST', '/api/v1/trading/orders', { market: 'DOCT-USDC', side: 'sell', type: 'limit', price: '0.5', quantity: '100', clientOrderId: 'ask-1' });
  await call(bob, 'POST', '/api/v1/trading/orders', { market: 'DOCT-USDC', side: 'buy', type: 'limit', price: '0.5', quantity: '40' });
  await call(bob, 'POST', '/api/v1/trading/orders', { market: 'DOCT-USDC', side: 'buy', type: 'limit', price: '0.1', quantity: '20' });
  await call(bob, 'GET', '/api/v1/trading/orders?status=all');
  await call(alice, 'GET', `/api/v1/trading/orders/${ask.id}`);
  await call(bob, 'GET', '/api/v1/trading/fills');
  await call(bob, 'GET', '/api/v1/trading/positions');
  await call(bob, 'POST', '/api/v1/trading/positions/DOCT/close');
  await call(alice, 'DELETE', `/api/v1/trading/orders/${ask.id}`);
  await call(bob, 'DELETE', '/api/v1/trading/orders');
  for (const path of ['markets', 'assets', 'tickers', 'orderbook/DOCT-USDC', 'trades/DOCT-USDC', 'candles/DOCT-USDC?interval=1m']) {
    await call(bob, 'GET', `/api/v1/market/${path}`);
  }

  // Account.
  for (const path of ['', '/balances', '/portfolio', '/trading-limit', '/withdrawal-limit']) await call(bob, 'GET', `/api/v1/account${path}`);
  await call(alice, 'GET', '/api/v1/security/sessions');
  await call(alice, 'GET', '/api/v1/security/checklist');

  // Keys.
  const key = await call(alice, 'POST', '/api/v1/keys', { label: 'docs', scopes: ['market:read'] });
  await call(alice, 'GET', '/api/v1/keys');
  await call(alice, 'PATCH', `/api/v1/keys/${key.id}`, { label: 'docs 2' });
  await call(alice, 'GET', `/api/v1/keys/${key.id}`);
  await call(alice, 'POST', `/api/v1/keys/${key.id}/regenerate`);
  await call(admin, 'POST', `/api/v1/admin/keys/${key.id}/suspend`, { reason: 'checking' });
  await call(admin, 'POST', `/api/v1/admin/keys/${key.id}/unsuspend`);
  await call(alice, 'DELETE', `/api/v1/keys/${key.id}`);

  // Withdrawals: one approved automatically, one waiting for an admin and approved, one rejected, one cancelled.
  const address = '0x52908400098527886E0F7030069857D2E4169EE7';
  await call(admin, 'PUT', `/api/v1/admin/accounts/${bob.account.wallet}/withdrawal-tier`, { tier: 2 });
  await call(admin, 'GET', `/api/v1/admin/accounts/${bob.account.wallet}/withdrawal-tier`);
  await call(bob, 'POST', '/api/v1/account/withdrawals', { asset: 'USDC', amount: '10', address, clientWithdrawalId: 'w-1' });
  await call(bob, 'POST', '/api/v1/account/withdrawals', { asset: 'USDC', amount: '10', address, clientWithdrawalId: 'w-1' });
  await call(admin, 'POST', '/api/v1/sandbox/faucet', { asset: 'USDC', amount: '10000' });
  await call(admin, 'PUT', `/api/v1/admin/accounts/${admin.account.wallet}/withdrawal-tier`, { tier: 2 }, admin2.headers);
  const big = await call(admin, 'POST', '/api/v1/account/withdrawals', { asset: 'USDC', amount: '2000', address });
  const rejected = await call(admin, 'POST', '/api/v1/account/withdrawals', { asset: 'USDC', amount: '2000', address });
  const cancelled = await call(admin, 'POST', '/api/v1/account/withdrawals', { asset: 'USDC', amount: '2000', address });
  await call(admin2, 'GET', '/api/v1/admin/withdrawals?status=pending');
  await call(admin2, 'POST', `/api/v1/admin/withdrawals/${big.id}/approve`);
  await call(admin2, 'POST', `/api/v1/admin/withdrawals/${rejected.id}/reject`, { reason: 'no' });
  await call(admin, 'POST', `/api/v1/account/withdrawals/${cancelled.id}/cancel`);
  await call(admin, 'GET', '/api/v1/account/withdrawals');
  await call(admin, 'GET', `/api/v1/account/withdrawals/${big.id}`);
  const saved = await call(bob, 'POST', '/api/v1/account/withdrawal-addresses', { chain: 'evm', address, label: 'cold' });
  await call(bob, 'GET', '/api/v1/account/withdrawal-addresses');
  await call(bob, 'PUT', '/api/v1/account/withdrawal-addresses/settings', { enabled: true });
  await call(bob, 'DELETE', `/api/v1/account/withdrawal-addresses/${saved.id}`);

  // Admin.
  await call(admin, 'GET', `/api/v1/admin/accounts/${bob.account.wallet}/limits`);
  await call(admin, 'PUT', `/api/v1/admin/accounts/${bob.account.wallet}/limits`, { market: 200 });
  await call(admin, 'GET', `/api/v1/admin/accounts/${bob.account.wallet}/trading-limit`);
  await call(admin, 'PUT', `/api/v1/admin/accounts/${bob.account.wallet}/trading-limit`, { dailyNotional: '5000' });
  await call(admin, 'GET', `/api/v1/admin/accounts/${bob.account.wallet}/open-orders-limit`);
  await call(admin, 'PUT', `/api/v1/admin/accounts/${bob.account.wallet}/open-orders-limit`, { maxOpenOrders: 500 });
  await call(admin, 'POST', '/api/v1/admin/ip-blocks', { target: '203.0.113.0/24', reason: 'docs', durationSec: 60 });
  await call(admin, 'GET', '/api/v1/admin/ip-blocks');
  await call(admin, 'DELETE', '/api/v1/admin/ip-blocks?target=203.0.113.0/24');
  await call(admin, 'DELETE', '/api/v1/admin/markets/DOCT-USDC');
  await call(admin, 'PUT', `/api/v1/admin/accounts/${bob.account.wallet}/role`, { role: 'developer' });
  await call(admin, 'POST', `/api/v1/admin/accounts/${bob.account.wallet}/revoke-sessions`);

  // Audit.
  await server.services.audit.flush();
  await call(auditor, 'GET', '/api/v1/audit/events?limit=5');
  await call(auditor, 'GET', '/api/v1/audit/verify');
  await server.app.inject({ method: 'GET', url: '/api/v1/audit/export?limit=5', headers: auditor.headers });

  // Refusals: problem+json, documented as every operation's default answer.
  for (const [method, url, payload] of [
    ['GET', '/api/v1/account', undefined],
    ['GET', '/api/v1/trading/orders/ord_unknown', undefined],
    ['POST', '/api/v1/trading/orders', { market: 'MOON-USDC', side: 'buy', type: 'limit', price: 1, quantity: '1' }],
    ['PUT', '/api/v1/account', {}],
  ] as const) {
    const res = await server.app.inject({ method, url, headers: url === '/api/v1/account' && method === 'GET' ? {} : bob.headers, ...(payload ? { payload } : {}) });
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
  }

  // Sign-out last (it revokes Alice's session).
  await call(alice, 'DELETE', `/api/v1/security/sessions/${(await sessionFor(server, { wallet: alice.account.wallet })).sessionId}`).catch(() => undefined);
  await call(alice, 'POST', '/api/v1/auth/logout');
});
afterAll(() => server?.close());

describe('/openapi.json against real answers', () => {
  const operation = (doc: any, s: { method: string; route: string }) => doc.paths[s.route.replace(/:(\w+)/g, '{$1}')]?.[s.method.toLowerCase()];

  it('every answer has a documented status, and validates against its schema as sent', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const ajv = new Ajv2020.default({ strict: false, allErrors: true });
    addFormats.default(ajv);
    const problems: string[] = [];
    let refusals = 0;
    for (const s of seen) {
      const op = operation(doc, s);
      if (!op) continue;
      if (s.status >= 400) {
        refusals++;
        const schema = op.responses.default.content['application/problem+json'].schema;
        if (!ajv.validate(schema, JSON.parse(s.sent ?? 'null'))) problems.push(`${s.method} ${s.route} ${s.status}: ${ajv.errorsText(ajv.errors)}`);
        continue;
      }
      const response = op.responses[String(s.status)];
      if (!response) {
        problems.push(`${s.method} ${s.route}: answered ${s.status}, documents ${Object.keys(op.responses).join(', ')}`);
        continue;
      }
      const schema = response.content?.['application/json']?.schema;
      if (!schema || s.sent === undefined) continue;
      if (!ajv.validate(schema, JSON.parse(s.sent))) problems.push(`${s.method} ${s.route} ${s.status}: ${ajv.errorsText(ajv.errors)}`);
    }
    expect(problems).toEqual([]);
    expect(refusals).toBeGreaterThanOrEqual(3);
    expect(seen.filter((s) => s.sent !== undefined).length).toBeGreaterThan(60);
  });

  it('what a handler returned is what was sent: no field dropped, no value coerced by the schema', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const problems: string[] = [];
    for (const s of seen) {
      if (!operation(doc, s) || s.sent === undefined || s.status >= 400) continue;
      const sent = JSON.parse(s.sent);
      if (!isDeepStrictEqual(sent, s.returned)) {
        problems.push(`${s.method} ${s.route} ${s.status}: returned ${JSON.stringify(s.returned).slice(0, 600)}\n  sent ${JSON.stringify(sent).slice(0, 600)}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every documented operation was exercised', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const exercised = new Set(seen.filter((s) => s.status < 400).map((s) => `${s.method.toLowerCase()} ${s.route.replace(/:(\w+)/g, '{$1}')}`));
    // Answers with no JSON body (204, NDJSON) pass no serializer: they are counted from the routes called.
    for (const extra of ['post /api/v1/auth/logout', 'delete /api/v1/security/sessions/{id}', 'delete /api/v1/account/withdrawal-addresses/{id}', 'delete /api/v1/admin/ip-blocks', 'get /api/v1/audit/export']) exercised.add(extra);
    const documented = Object.entries(doc.paths as Record<string, object>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(documented.filter((o) => !exercised.has(o))).toEqual([]);
  });
});
