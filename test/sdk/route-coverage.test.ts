/**
 * Every route the server documents in /openapi.json has an SDK method, and every SDK method calls a
 * documented route: the right method and path, only query parameters the route declares (and all of
 * them reachable), a body holding only members the route declares (its required ones included).
 * Admin and audit routes are left to `client.request()` (the README says so); every other route
 * needs a method here, so a new server route without one fails this test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MoondraftClient } from '@moondraft/client';
import { startTestServer, type TestServer } from '../support/server.js';

/** Reached with `client.request()`, not a typed method. */
const LEFT_TO_REQUEST = /^\/api\/v1\/(admin|audit)\//;

interface Operation {
  method: string;
  path: string;
  query: string[];
  body: { properties: string[]; required: string[] } | undefined;
}

interface Sent {
  method: string;
  pathname: string;
  query: string[];
  body: Record<string, unknown> | undefined;
}

/** One request per call: every list envelope the SDK unwraps, a token pair for sign-in and refresh. */
const ANSWER = JSON.stringify({
  markets: [], assets: [], tickers: [], trades: [], candles: [], positions: [], balances: [], withdrawals: [], tokens: [], next: null,
  keys: [], sessions: [], accessToken: 'access', refreshToken: 'mdr_next', tokenType: 'Bearer', expiresIn: 3600, sessionId: 'ses_1',
});

function recordingClient(sent: Sent[]): MoondraftClient {
  return new MoondraftClient({
    baseUrl: 'http://127.0.0.1:1',
    env: false,
    apiKey: 'md_test_coverage',
    apiSecret: 'secret',
    autoSyncTime: false,
    session: { accessToken: 'access', refreshToken: 'mdr_refresh', expiresAt: Date.now() + 3_600_000 },
    transport: {
      async send(request) {
        const text = request.body ? new TextDecoder().decode(request.body) : undefined;
        sent.push({
          method: request.method,
          pathname: request.url.pathname,
          query: [...request.url.searchParams.keys()],
          body: text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>),
        });
        return { status: 200, headers: new Headers({ 'content-type': 'application/json' }), body: ANSWER };
      },
      close() {},
    },
  });
}

const ORDER = { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '1', timeInForce: 'GTC', clientOrderId: 'c1', selfTradePrevention: 'cancel_both' } as const;

/** Every typed method, with every optional query parameter and body member it takes. */
const CALLS: Record<string, (c: MoondraftClient) => Promise<unknown>> = {
  'system.time': (c) => c.system.time(),
  'system.health': (c) => c.system.health(),
  'system.jwks': (c) => c.system.jwks(),
  'account.get': (c) => c.account.get(),
  'account.balances': (c) => c.account.balances(),
  'account.portfolio': (c) => c.account.portfolio(),
  'account.tradingLimit': (c) => c.account.tradingLimit(),
  'auth.challenge': (c) => c.auth.challenge({ address: '0x0000000000000000000000000000000000000001', chain: 'ethereum' }),
  'auth.login': (c) => c.auth.login({ message: 'm', signature: '0x00' }),
  'auth.refresh': (c) => c.auth.refresh(),
  'auth.logout': (c) => c.auth.logout(),
  'sessions.list': (c) => c.sessions.list(),
  'sessions.revoke': (c) => c.sessions.revoke('ses_1'),
  'keys.create': (c) =>
    c.keys.create({ label: 'l', scopes: ['market:read'], ipWhitelist: ['10.0.0.1'], allowedCountries: ['DE'], expiresInDays: 30, type: 'ed25519', publicKey: 'ab' }),
  'keys.list': (c) => c.keys.list(),
  'keys.get': (c) => c.keys.get('key_1'),
  'keys.update': (c) => c.keys.update('key_1', { label: 'l', scopes: ['market:read'], ipWhitelist: [], allowedCountries: [] }),
  'keys.regenerate': (c) => c.keys.regenerate('key_1', { gracePeriodSeconds: 60, publicKey: 'ab', expiresInDays: 30 }),
  'keys.revoke': (c) => c.keys.revoke('key_1'),
  'keys.checklist': (c) => c.keys.checklist(),
  'market.markets': (c) => c.market.markets(),
  'market.assets': (c) => c.market.assets(),
  'market.tickers': (c) => c.market.tickers(),
  'market.orderBook': (c) => c.market.orderBook('MOON-USDC', { depth: 5 }),
  'market.trades': (c) => c.market.trades('MOON-USDC', { limit: 5 }),
  'market.candles': (c) => c.market.candles('MOON-USDC', { interval: '1h', from: 1, to: 2, limit: 5 }),
  'trading.placeOrder': (c) => c.trading.placeOrder(ORDER),
  'trading.orders': (c) => c.trading.orders({ market: 'MOON-USDC', status: 'open', limit: 5, before: 'ord_1' }),
  'trading.order': (c) => c.trading.order('ord_1'),
  'trading.cancelOrder': (c) => c.trading.cancelOrder('ord_1'),
  'trading.cancelAllOrders': (c) => c.trading.cancelAllOrders('MOON-USDC'),
  'trading.fills': (c) => c.trading.fills({ market: 'MOON-USDC', orderId: 'ord_1', limit: 5, before: 'fil_1' }),
  'trading.positions': (c) => c.trading.positions(),
  'trading.closePosition': (c) => c.trading.closePosition('MOON', { clientOrderId: 'c2', selfTradePrevention: 'cancel_maker' }),
  'sandbox.faucet': (c) => c.sandbox.faucet({ asset: 'USDC', amount: '1' }),
  'tokens.create': (c) =>
    c.tokens.create({ name: 'n', symbol: 'NEW', decimals: 2, supply: '100', chain: 'evm', description: 'd', website: 'https://x.example', imageUrl: 'https://x.example/i.png' }),
  'tokens.list': (c) => c.tokens.list({ mine: true, limit: 5, before: '1.NEW' }),
  'tokens.page': (c) => c.tokens.page({ mine: true, limit: 5, before: '1.NEW' }),
  'tokens.get': (c) => c.tokens.get('NEW'),
  'tokens.update': (c) => c.tokens.update('NEW', { name: 'n', description: null, website: null, imageUrl: null }),
  'withdrawals.create': (c) => c.withdrawals.create({ asset: 'USDC', amount: '1', address: '0x0000000000000000000000000000000000000001', clientWithdrawalId: 'w1' }),
  'withdrawals.list': (c) => c.withdrawals.list({ status: 'pending', before: 'wdr_01ARZ3NDEKTSV4RRFFQ69G5FAV', limit: 5 }),
  'withdrawals.get': (c) => c.withdrawals.get('wdr_1'),
  'withdrawals.cancel': (c) => c.withdrawals.cancel('wdr_1'),
  'withdrawals.limit': (c) => c.withdrawals.limit(),
  'withdrawals.addressBook': (c) => c.withdrawals.addressBook(),
  'withdrawals.saveAddress': (c) => c.withdrawals.saveAddress({ chain: 'evm', address: '0x0000000000000000000000000000000000000001', label: 'l' }),
  'withdrawals.removeAddress': (c) => c.withdrawals.removeAddress('adr_1'),
  'withdrawals.setAddressBook': (c) => c.withdrawals.setAddressBook(true),
};
/** Methods that are no route of their own: signIn is challenge then login; checkChallenge is signIn's (private) check. */
const COMPOSITE = new Set(['auth.signIn', 'auth.checkChallenge']);

let server: TestServer;
let operations: Operation[];

beforeAll(async () => {
  server = await startTestServer();
  const res = await server.app.inject({ method: 'GET', url: '/openapi.json' });
  type Schema = { $ref?: string; properties?: Record<string, unknown>; required?: string[] };
  const doc = JSON.parse(res.body) as {
    paths: Record<string, Record<string, { parameters?: Array<{ in: string; name: string }>; requestBody?: { content: Record<string, { schema: Schema }> } }>>;
    components?: { schemas?: Record<string, Schema> };
  };
  const deref = (s: Schema): Schema => (s.$ref ? deref(doc.components!.schemas![s.$ref.split('/').pop()!]!) : s);
  operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => {
      const schema = op.requestBody?.content['application/json']?.schema;
      const body = schema ? deref(schema) : undefined;
      return {
        method: method.toUpperCase(),
        path,
        query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
        body: body ? { properties: Object.keys(body.properties ?? {}), required: body.required ?? [] } : undefined,
      };
    }),
  );
});
afterAll(async () => {
  await server?.close();
});

/** The documented operation a request addresses (a literal segment wins over a parameter). */
function operationOf(sent: Sent): Operation | undefined {
  const candidates = operations.filter((op) => {
    if (op.method !== sent.method) return false;
    const pattern = new RegExp(`^${op.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`);
    return pattern.test(sent.pathname);
  });
  return candidates.sort((a, b) => (a.path.match(/\{/g)?.length ?? 0) - (b.path.match(/\{/g)?.length ?? 0))[0];
}

describe('SDK coverage of /openapi.json', () => {
  it('has a call here for every method of every namespace', () => {
    const client = recordingClient([]);
    const namespaces = ['system', 'account', 'auth', 'sessions', 'keys', 'market', 'trading', 'sandbox', 'tokens', 'withdrawals'] as const;
    const methods = namespaces.flatMap((ns) =>
      Object.getOwnPropertyNames(Object.getPrototypeOf(client[ns]))
        .filter((name) => name !== 'constructor' && typeof (client[ns] as unknown as Record<string, unknown>)[name] === 'function')
        .map((name) => `${ns}.${name}`),
    );
    expect(methods.filter((m) => !(m in CALLS) && !COMPOSITE.has(m))).toEqual([]);
  });

  it('every SDK method calls a documented route, with declared query parameters and body members only', async () => {
    const problems: string[] = [];
    for (const [name, call] of Object.entries(CALLS)) {
      const sent: Sent[] = [];
      await call(recordingClient(sent));
      expect(sent, name).toHaveLength(1);
      const request = sent[0]!;
      const op = operationOf(request);
      if (!op) {
        problems.push(`${name}: ${request.method} ${request.pathname} is not documented`);
        continue;
      }
      const undeclared = request.query.filter((q) => !op.query.includes(q));
      if (undeclared.length) problems.push(`${name}: query ${undeclared.join(', ')} not declared by ${op.method} ${op.path}`);
      if (request.body !== undefined) {
        const members = Object.keys(request.body);
        const extra = members.filter((m) => !op.body?.properties.includes(m));
        const missing = (op.body?.required ?? []).filter((m) => !members.includes(m));
        if (extra.length) problems.push(`${name}: body members ${extra.join(', ')} not declared by ${op.method} ${op.path}`);
        if (missing.length) problems.push(`${name}: required body members ${missing.join(', ')} of ${op.method} ${op.path} not sent`);
      } else if (op.body?.required.length) {
        problems.push(`${name}: ${op.method} ${op.path} requires a body`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every documented route outside admin and audit has a method, reaching all its query parameters and body members', async () => {
    const reached = new Map<Operation, { query: Set<string>; body: Set<string> }>();
    for (const call of Object.values(CALLS)) {
      const sent: Sent[] = [];
      await call(recordingClient(sent));
      for (const request of sent) {
        const op = operationOf(request);
        if (!op) continue;
        const seen = reached.get(op) ?? { query: new Set(), body: new Set() };
        request.query.forEach((q) => seen.query.add(q));
        Object.keys(request.body ?? {}).forEach((m) => seen.body.add(m));
        reached.set(op, seen);
      }
    }
    const gaps: string[] = [];
    for (const op of operations) {
      if (LEFT_TO_REQUEST.test(op.path) || op.path === '/openapi.json') continue;
      const seen = reached.get(op);
      if (!seen) {
        gaps.push(`${op.method} ${op.path}: no SDK method`);
        continue;
      }
      const query = op.query.filter((q) => !seen.query.has(q));
      const body = (op.body?.properties ?? []).filter((m) => !seen.body.has(m));
      if (query.length) gaps.push(`${op.method} ${op.path}: query ${query.join(', ')} unreachable`);
      if (body.length) gaps.push(`${op.method} ${op.path}: body members ${body.join(', ')} unreachable`);
    }
    expect(gaps).toEqual([]);
  });
});
