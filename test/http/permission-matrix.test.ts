import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { Keyring } from '../../src/security/crypto/keyring.js';
import { ensureKeysetFile } from '../../src/security/identity/signing-keys.js';
import { PERMISSIONS, READ_ONLY_SCOPES, ROLES, scopesAllowedForRole, type Permission, type Role, type Scope } from '../../src/security/rbac/roles.js';
import { hmacSignatureHex } from '../../src/security/signing/index.js';
import { randomWallet, sessionFor } from '../support/auth.js';
import { startTestServer, viaTlsProxy, type TestServer } from '../support/server.js';
import { fund, listMoon, USDC } from '../support/trading.js';

/**
 * The permission matrix, end to end: every route the server registers (Fastify's own route list,
 * recorded by an onRoute hook on the real server), against the contract (API.md: roles, scopes,
 * session-only operations, error codes), for every role and every kind of credential.
 */
const registered = vi.hoisted(() => [] as import('../support/route-recorder.js').RecordedRoute[]);
vi.mock('fastify', async (importOriginal) => (await import('../support/route-recorder.js')).recordingFastify(await importOriginal<typeof import('fastify')>(), registered));

type P = Exclude<Permission, 'public'>;

/** What API.md and the product page say each route needs. A route missing here fails the test. */
const CONTRACT: Record<string, Permission> = {
  'GET /api/v1/time': 'public',
  'POST /api/v1/auth/challenge': 'public',
  'POST /api/v1/auth/login': 'public',
  'POST /api/v1/auth/refresh': 'public',
  // "logout needs the session's own access token (an API key gets session_required)"
  'POST /api/v1/auth/logout': 'self:manage',
  'GET /api/v1/security/sessions': 'self:manage',
  'DELETE /api/v1/security/sessions/:id': 'self:manage',
  'GET /api/v1/security/checklist': 'self:manage',
  // "Keys are managed with a session JWT only (an API key can never create or widen keys)"
  'POST /api/v1/keys': 'keys:write',
  'GET /api/v1/keys': 'self:manage',
  'GET /api/v1/keys/:id': 'self:manage',
  'PATCH /api/v1/keys/:id': 'keys:write',
  'POST /api/v1/keys/:id/regenerate': 'keys:write',
  'DELETE /api/v1/keys/:id': 'self:manage',
  // Read-only: market data access, account balance queries, order history, portfolio analytics.
  'GET /api/v1/market/markets': 'market:read',
  'GET /api/v1/market/assets': 'market:read',
  'GET /api/v1/market/tickers': 'market:read',
  'GET /api/v1/market/orderbook/:market': 'market:read',
  'GET /api/v1/market/trades/:market': 'market:read',
  'GET /api/v1/market/candles/:market': 'market:read',
  'GET /api/v1/tokens': 'market:read',
  'GET /api/v1/tokens/:symbol': 'market:read',
  'GET /api/v1/account': 'account:read',
  'GET /api/v1/account/balances': 'account:read',
  'GET /api/v1/account/trading-limit': 'account:read',
  'GET /api/v1/account/withdrawals': 'account:read',
  'GET /api/v1/account/withdrawals/:id': 'account:read',
  'GET /api/v1/account/withdrawal-limit': 'account:read',
  'GET /api/v1/account/withdrawal-addresses': 'account:read',
  'GET /api/v1/trading/orders': 'orders:read',
  'GET /api/v1/trading/orders/:id': 'orders:read',
  'GET /api/v1/trading/fills': 'orders:read',
  'GET /api/v1/account/portfolio': 'portfolio:read',
  'GET /api/v1/trading/positions': 'portfolio:read',
  // Trading: order placement and cancellation, position management, withdrawals, tokens.
  'POST /api/v1/trading/orders': 'orders:write',
  'DELETE /api/v1/trading/orders': 'orders:write',
  'DELETE /api/v1/trading/orders/:id': 'orders:write',
  'POST /api/v1/trading/positions/:asset/close': 'positions:write',
  'POST /api/v1/account/withdrawals': 'withdrawals:write',
  'POST /api/v1/account/withdrawals/:id/cancel': 'withdrawals:write',
  'POST /api/v1/account/withdrawal-addresses': 'withdrawals:write',
  'DELETE /api/v1/account/withdrawal-addresses/:id': 'withdrawals:write',
  'PUT /api/v1/account/withdrawal-addresses/settings': 'withdrawals:write',
  'POST /api/v1/tokens': 'tokens:write',
  'PATCH /api/v1/tokens/:symbol': 'tokens:write',
  'POST /api/v1/sandbox/faucet': 'sandbox:faucet',
  // Admin: everything operational; auditor: audit logs only (signed-in session only).
  'PUT /api/v1/admin/accounts/:address/role': 'admin:write',
  'POST /api/v1/admin/accounts/:address/revoke-sessions': 'admin:write',
  'GET /api/v1/admin/accounts/:address/limits': 'admin:read',
  'PUT /api/v1/admin/accounts/:address/limits': 'admin:write',
  'GET /api/v1/admin/accounts/:address/trading-limit': 'admin:read',
  'PUT /api/v1/admin/accounts/:address/trading-limit': 'admin:write',
  'GET /api/v1/admin/accounts/:address/open-orders-limit': 'admin:read',
  'PUT /api/v1/admin/accounts/:address/open-orders-limit': 'admin:write',
  'GET /api/v1/admin/accounts/:address/withdrawal-tier': 'admin:read',
  'PUT /api/v1/admin/accounts/:address/withdrawal-tier': 'admin:write',
  'POST /api/v1/admin/keys/:id/suspend': 'admin:write',
  'POST /api/v1/admin/keys/:id/unsuspend': 'admin:write',
  'GET /api/v1/admin/ip-blocks': 'admin:read',
  'POST /api/v1/admin/ip-blocks': 'admin:write',
  'DELETE /api/v1/admin/ip-blocks': 'admin:write',
  'POST /api/v1/admin/assets': 'admin:write',
  'POST /api/v1/admin/markets': 'admin:write',
  'DELETE /api/v1/admin/markets/:market': 'admin:write',
  'GET /api/v1/admin/withdrawals': 'admin:read',
  'POST /api/v1/admin/withdrawals/:id/approve': 'admin:write',
  'POST /api/v1/admin/withdrawals/:id/reject': 'admin:write',
  'GET /api/v1/audit/events': 'audit:read',
  'GET /api/v1/audit/export': 'audit:read',
  'GET /api/v1/audit/verify': 'audit:read',
};

const rule = (p: P) => PERMISSIONS[p] as { roles: readonly Role[]; scope: Scope | null; unsignedKeyAllowed?: boolean };
const WRITE_SCOPES: readonly Scope[] = ['orders:write', 'positions:write', 'withdrawals:write', 'tokens:write'];

/** Parameters that match each route's schema but name nothing that exists: allowed calls change nothing. */
function concrete(url: string): string {
  return url
    .replace(':address', randomWallet())
    .replace(':market', 'ZZZ-USDC')
    .replace(':asset', 'ZZZ')
    .replace(':symbol', 'ZZZ')
    .replace('/keys/:id', '/keys/key_00000000000000000000000000')
    .replace('/sessions/:id', '/sessions/ses_missing')
    .replace(':id', 'wdr_00000000000000000000000000');
}

describe('every registered route against the contract', () => {
  let server: TestServer;
  const clock = new ManualClock(Date.UTC(2026, 4, 1));
  const apiRoutes = () => registered.filter((r) => r.url.startsWith('/api/') && r.method !== 'HEAD');

  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  it('records the real route list', () => {
    expect(apiRoutes().length).toBeGreaterThan(60);
  });

  it('every /api route declares the permission the contract gives it, and the contract lists no route that does not exist', () => {
    const declared = Object.fromEntries(apiRoutes().map((r) => [`${r.method} ${r.url}`, r.permission]));
    expect(declared).toEqual(CONTRACT);
    for (const r of registered.filter((x) => x.method === 'HEAD' && x.url.startsWith('/api/'))) {
      expect(r.permission, `HEAD ${r.url}`).toBe(CONTRACT[`GET ${r.url}`]);
    }
  });

  it('the OpenAPI document offers each route exactly the credentials its permission accepts', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { security?: unknown }>> };
    for (const r of apiRoutes()) {
      const op = doc.paths[r.url.replace(/:(\w+)/g, '{$1}')]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${r.url} is documented`).toBeDefined();
      // A session only; or a session or an API key, which signs the request (timestamp and
      // signature headers) unless the permission allows an unsigned key (market data).
      const p = r.permission === 'public' ? undefined : rule(r.permission as P);
      const expected = p === undefined ? undefined : p.scope === null ? [{ bearer: [] }] : p.unsignedKeyAllowed ? [{ bearer: [] }, { apiKey: [] }] : [{ bearer: [] }, { apiKey: [], apiTimestamp: [], apiSignature: [] }];
      expect({ route: `${r.method} ${r.url}`, security: op!.security }).toEqual({ route: `${r.method} ${r.url}`, security: expected });
    }
  });

  it('the matrix keeps the contract’s invariants', () => {
    for (const r of apiRoutes()) {
      const where = `${r.method} ${r.url}`;
      if (r.permission === 'public') continue;
      const p = rule(r.permission as P);
      // Admin routes: admins only, by session only; audit routes: auditors only, by session only.
      if (r.url.startsWith('/api/v1/admin/')) expect({ where, roles: p.roles, scope: p.scope }).toEqual({ where, roles: ['admin'], scope: null });
      if (r.url.startsWith('/api/v1/audit/')) expect({ where, roles: p.roles, scope: p.scope }).toEqual({ where, roles: ['auditor'], scope: null });
      // Read-only scopes never change anything; write scopes never merely read.
      if (p.scope !== null) expect(READ_ONLY_SCOPES.includes(p.scope), where).toBe(r.method === 'GET');
      // Developers never trade, withdraw or create tokens.
      if (p.scope !== null && WRITE_SCOPES.includes(p.scope)) expect(p.roles, where).not.toContain('developer');
      // Auditors change nothing but their own credentials (sign-out, sessions, revoking API keys).
      if (r.method !== 'GET' && p.roles.includes('auditor')) expect(r.permission, where).toBe('self:manage');
      // Only market data may be reached with an unsigned API key.
      if (p.unsignedKeyAllowed) expect(r.url.startsWith('/api/v1/market/') || (r.url.startsWith('/api/v1/tokens') && r.method === 'GET'), where).toBe(true);
    }
    // A key's scopes are capped by its owner's role: no role may hold a scope it cannot use.
    expect(scopesAllowedForRole('auditor')).toEqual(['market:read', 'account:read']);
    expect(scopesAllowedForRole('developer')).not.toEqual(expect.arrayContaining(WRITE_SCOPES.map((s) => s)));
  });

  describe('every route × role × credential, through the real pipeline', () => {
    const AUTHZ_CODES = ['unauthenticated', 'forbidden_role', 'session_required', 'insufficient_scope', 'signature_required', 'invalid_token', 'invalid_api_key'];
    /** Per role: a key with every scope the role may hold, and per scope a key with all but that one. */
    const keys = new Map<Role, { full: { apiKey: string; secret: string }; without: Map<Scope, { apiKey: string; secret: string }> }>();
    let anonymousSeq = 0;

    beforeAll(async () => {
      for (const role of ROLES) {
        // Auditors may not create keys: an auditor's keys are ones its account made before it
        // became an auditor (as a developer here; its scopes fit both roles).
        const s = await sessionFor(server, { role: role === 'auditor' ? 'developer' : role });
        await server.services.partnerLimits.set(s.account.id, { market: 100_000, trading: 100_000, account: 100_000, tokens: 100_000 }, 'test');
        const create = async (scopes: readonly Scope[]) => {
          const res = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: s.headers, payload: { label: 'matrix', scopes, ipWhitelist: ['127.0.0.1'] } });
          expect(res.statusCode, res.body).toBe(201);
          const body = res.json() as { apiKey: string; apiSecret: string };
          return { apiKey: body.apiKey, secret: body.apiSecret };
        };
        const allowed = scopesAllowedForRole(role);
        const without = new Map<Scope, { apiKey: string; secret: string }>();
        for (const scope of allowed) without.set(scope, await create(allowed.filter((x) => x !== scope)));
        keys.set(role, { full: await create(allowed), without });
        if (role === 'auditor') await server.services.accounts.setRole(s.account.wallet, 'auditor', 'test');
      }
    });

    async function asSession(role: Role, method: string, url: string): Promise<LightMyRequestResponse> {
      const s = await sessionFor(server, { role });
      await server.services.partnerLimits.set(s.account.id, { market: 100_000, trading: 100_000, account: 100_000, tokens: 100_000 }, 'test');
      return server.app.inject({ method: method as 'GET', url, headers: s.headers });
    }

    function asKey(key: { apiKey: string; secret: string }, method: string, url: string, signed = true): Promise<LightMyRequestResponse> {
      clock.advance(3);
      const timestamp = String(clock.now());
      const headers: Record<string, string> = { 'x-api-key': key.apiKey };
      if (signed) {
        headers['x-api-timestamp'] = timestamp;
        headers['x-api-signature'] = hmacSignatureHex(key.secret, { timestamp, method, pathWithQuery: url, body: '' });
      }
      return server.app.inject({ method: method as 'GET', url, headers });
    }

    const outcome = (res: LightMyRequestResponse) => {
      const code = res.headers['content-type']?.toString().startsWith('application/problem+json') ? (res.json() as { code: string }).code : undefined;
      return AUTHZ_CODES.includes(code ?? '') ? { status: res.statusCode, code } : { status: res.statusCode, code: 'allowed' };
    };

    it('anonymous callers get 401 unauthenticated on every protected route', async () => {
      for (const r of apiRoutes()) {
        if (r.permission === 'public') continue;
        const url = concrete(r.url);
        const res = await server.app.inject({ method: r.method as 'GET', url, remoteAddress: `198.18.${anonymousSeq >> 8}.${anonymousSeq++ & 255}` });
        expect({ route: `${r.method} ${r.url}`, ...outcome(res) }).toEqual({ route: `${r.method} ${r.url}`, status: 401, code: 'unauthenticated' });
      }
    });

    it('sessions: exactly the roles of the matrix pass, others get 403 forbidden_role', async () => {
      for (const r of apiRoutes()) {
        if (r.permission === 'public' || r.url === '/api/v1/auth/logout') continue;
        const p = rule(r.permission as P);
        for (const role of ROLES) {
          const res = await asSession(role, r.method, concrete(r.url));
          const expected = p.roles.includes(role) ? 'allowed' : 'forbidden_role';
          expect({ route: `${r.method} ${r.url}`, role, code: outcome(res).code }).toEqual({ route: `${r.method} ${r.url}`, role, code: expected });
          if (expected === 'forbidden_role') expect(res.statusCode).toBe(403);
        }
      }
    });

    it('API keys: session-only routes answer session_required, a missing scope insufficient_scope, unsigned requests signature_required', async () => {
      for (const r of apiRoutes()) {
        if (r.permission === 'public') continue;
        const p = rule(r.permission as P);
        const route = `${r.method} ${r.url}`;
        for (const role of ROLES) {
          const k = keys.get(role)!;
          const url = concrete(r.url);
          const full = outcome(await asKey(k.full, r.method, url));
          const expected = !p.roles.includes(role) ? 'forbidden_role' : p.scope === null ? 'session_required' : 'allowed';
          expect({ route, role, key: 'full', code: full.code }).toEqual({ route, role, key: 'full', code: expected });
          if (expected === 'allowed') {
            const lacking = outcome(await asKey(k.without.get(p.scope!)!, r.method, url));
            expect({ route, role, key: `without ${p.scope}`, ...lacking }).toEqual({ route, role, key: `without ${p.scope}`, status: 403, code: 'insufficient_scope' });
            const unsigned = outcome(await asKey(k.full, r.method, url, false));
            expect({ route, role, key: 'unsigned', code: unsigned.code }).toEqual({ route, role, key: 'unsigned', code: p.unsignedKeyAllowed ? 'allowed' : 'signature_required' });
          }
        }
      }
    });
    it('a role changed after sign-in and after key creation: on every route, exactly the rights of the role in force now', async () => {
      // Every (role at sign-in / key creation, role now) pair: the token still claims the old role,
      // and the key still holds every scope the old role allowed. The matrix must read the current
      // role on each request (a demoted admin keeps nothing; a key's scopes are capped by the owner's
      // role now, not at creation).
      for (const before of ROLES) {
        for (const now of ROLES) {
          if (before === now) continue;
          // Auditors create no keys: an auditor's key was made earlier, under another role.
          const s = await sessionFor(server, { role: before === 'auditor' ? 'developer' : before });
          await server.services.partnerLimits.set(s.account.id, { market: 100_000, trading: 100_000, account: 100_000, tokens: 100_000 }, 'test');
          const held = scopesAllowedForRole(before);
          const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: s.headers, payload: { label: 'changed', scopes: held, ipWhitelist: ['127.0.0.1'] } });
          expect(created.statusCode, created.body).toBe(201);
          const key = { apiKey: created.json().apiKey as string, secret: created.json().apiSecret as string };
          const token = before === 'auditor' ? (await server.services.accounts.setRole(s.account.wallet, 'auditor', 'test'), await sessionFor(server, { wallet: s.account.wallet })) : s;
          expect(token.claims.role).toBe(before);
          const changed = await server.services.accounts.setRole(s.account.wallet, now, 'test');
          expect(changed.ok).toBe(true);
          for (const r of apiRoutes()) {
            if (r.permission === 'public' || r.url === '/api/v1/auth/logout') continue;
            const p = rule(r.permission as P);
            const route = `${r.method} ${r.url}`;
            const url = concrete(r.url);
            const bySession = outcome(await server.app.inject({ method: r.method as 'GET', url, headers: token.headers }));
            expect({ route, before, now, via: 'session', code: bySession.code }).toEqual({ route, before, now, via: 'session', code: p.roles.includes(now) ? 'allowed' : 'forbidden_role' });
            const byKey = outcome(await asKey(key, r.method, url));
            const expected = !p.roles.includes(now) ? 'forbidden_role' : p.scope === null ? 'session_required' : held.includes(p.scope) ? 'allowed' : 'insufficient_scope';
            expect({ route, before, now, via: 'key', code: byKey.code }).toEqual({ route, before, now, via: 'key', code: expected });
          }
        }
      }
    });
  });

  describe("another account's resources", () => {
    type Session = Awaited<ReturnType<typeof sessionFor>>;
    const req = (s: Session, method: string, url: string, payload?: unknown) =>
      server.app.inject({ method: method as 'GET', url, headers: s.headers, ...(payload !== undefined ? { payload: payload as object } : {}) });
    const person = async (role: Role = 'trader') => {
      const s = await sessionFor(server, { role });
      await server.services.partnerLimits.set(s.account.id, { market: 100_000, trading: 100_000, account: 100_000, tokens: 100_000 }, 'test');
      return s;
    };
    /** What a refusal says, without what differs between any two answers (request id). */
    const answer = (res: LightMyRequestResponse) => {
      const { requestId: _id, ...rest } = res.json() as Record<string, unknown>;
      return { status: res.statusCode, ...rest };
    };

    it('answer exactly as resources that do not exist, and stay unchanged', async () => {
      const a = await person();
      const b = await person();
      const admin = await person('admin');
      await listMoon(server.services.trading, 'XMAT');
      await fund(server.services.trading, a.account.id, 'USDC', USDC('5000'));
      const order = await req(a, 'POST', '/api/v1/trading/orders', { market: 'XMAT-USDC', side: 'buy', type: 'limit', price: '1', quantity: '10' });
      expect(order.statusCode, order.body).toBe(201);
      const orderId = order.json().id as string;
      expect((await req(admin, 'PUT', `/api/v1/admin/accounts/${a.account.wallet}/withdrawal-tier`, { tier: 1 })).statusCode).toBe(200);
      const withdrawal = await req(a, 'POST', '/api/v1/account/withdrawals', { asset: 'USDC', amount: '2000', address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed' });
      expect(withdrawal.json(), withdrawal.body).toMatchObject({ status: 'pending' });
      const withdrawalId = withdrawal.json().id as string;
      const saved = await req(a, 'POST', '/api/v1/account/withdrawal-addresses', { chain: 'evm', address: '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359' });
      expect(saved.statusCode, saved.body).toBe(201);
      const addressId = saved.json().id as string;
      const key = await req(a, 'POST', '/api/v1/keys', { label: 'a', scopes: ['market:read'] });
      const keyId = key.json().id as string;
      const aSession = await sessionFor(server, { wallet: a.account.wallet });

      const missing = (id: string) => id.slice(0, 4) + '0'.repeat(id.length - 4);
      const probes: [string, string, string, unknown?][] = [
        ['GET', `/api/v1/trading/orders/${orderId}`, `/api/v1/trading/orders/${missing(orderId)}`],
        ['DELETE', `/api/v1/trading/orders/${orderId}`, `/api/v1/trading/orders/${missing(orderId)}`],
        ['GET', `/api/v1/account/withdrawals/${withdrawalId}`, `/api/v1/account/withdrawals/${missing(withdrawalId)}`],
        ['POST', `/api/v1/account/withdrawals/${withdrawalId}/cancel`, `/api/v1/account/withdrawals/${missing(withdrawalId)}/cancel`],
        ['DELETE', `/api/v1/account/withdrawal-addresses/${addressId}`, `/api/v1/account/withdrawal-addresses/${missing(addressId)}`],
        ['GET', `/api/v1/keys/${keyId}`, `/api/v1/keys/${missing(keyId)}`],
        ['PATCH', `/api/v1/keys/${keyId}`, `/api/v1/keys/${missing(keyId)}`, { label: 'mine now' }],
        ['POST', `/api/v1/keys/${keyId}/regenerate`, `/api/v1/keys/${missing(keyId)}/regenerate`, {}],
        ['DELETE', `/api/v1/keys/${keyId}`, `/api/v1/keys/${missing(keyId)}`],
        ['DELETE', `/api/v1/security/sessions/${aSession.sessionId}`, `/api/v1/security/sessions/ses_test_0000000000000000`],
      ];
      for (const [method, url, absent, payload] of probes) {
        const theirs = answer(await req(b, method, url, payload));
        expect(theirs, `${method} ${url}`).toMatchObject({ status: 404, code: 'not_found' });
        expect(theirs, `${method} ${url}`).toEqual(answer(await req(b, method, absent, payload)));
      }
      expect((await req(b, 'GET', `/api/v1/trading/fills?orderId=${orderId}`)).json()).toEqual({ fills: [], next: null });

      // Nothing of A's changed.
      expect((await req(a, 'GET', `/api/v1/trading/orders/${orderId}`)).json()).toMatchObject({ status: 'open' });
      expect((await req(a, 'GET', `/api/v1/account/withdrawals/${withdrawalId}`)).json()).toMatchObject({ status: 'pending' });
      expect((await req(a, 'GET', '/api/v1/account/withdrawal-addresses')).json().addresses.map((x: { id: string }) => x.id)).toEqual([addressId]);
      expect((await req(a, 'GET', `/api/v1/keys/${keyId}`)).json()).toMatchObject({ status: 'active', label: 'a', regeneratedAt: null });
      expect((await req(aSession, 'GET', '/api/v1/account')).statusCode).toBe(200);
    });
  });

  it("forged requests consume no one's rate limit; requests beyond the caller's own rights consume its own", async () => {
    const owner = await sessionFor(server, { role: 'trader' });
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'limits', scopes: ['orders:read'] } });
    const key = { apiKey: created.json().apiKey as string, secret: created.json().apiSecret as string };
    const send = (method: string, url: string, secret: string, remoteAddress = '127.0.0.1') => {
      clock.advance(1);
      const timestamp = String(clock.now());
      const signature = hmacSignatureHex(secret, { timestamp, method, pathWithQuery: url, body: '' });
      return server.app.inject({ method: method as 'GET', url, remoteAddress, headers: { 'x-api-key': key.apiKey, 'x-api-timestamp': timestamp, 'x-api-signature': signature } });
    };
    clock.advance(10_000);
    let n = 0;
    // Someone holding the key but not its secret, from many addresses: refused before the limiter.
    for (let i = 0; i < 60; i++) expect((await send('GET', `/api/v1/trading/orders?limit=${++n}`, 'not-the-secret', `203.0.113.${i}`)).json().code).toBe('invalid_signature');
    // The key still has its whole trading budget (50 per second), and then no more.
    for (let i = 0; i < 50; i++) expect((await send('GET', `/api/v1/trading/orders?limit=${++n}`, key.secret)).statusCode).toBe(200);
    expect((await send('GET', `/api/v1/trading/orders?limit=${++n}`, key.secret)).json().code).toBe('rate_limited');
    // The key itself, beyond its scope, a second later: those are its own requests, and count.
    clock.advance(2_000);
    for (let i = 0; i < 50; i++) expect((await send('DELETE', `/api/v1/trading/orders?market=XMAT-USDC`, key.secret)).json().code).toBe('insufficient_scope');
    expect((await send('DELETE', `/api/v1/trading/orders?market=XMAT-USDC`, key.secret)).json().code).toBe('rate_limited');
    // The owner's session, as an auditor for a moment: refused by role, and counted against the
    // account's 50 trading requests per second.
    await server.services.accounts.setRole(owner.account.wallet, 'auditor', 'test');
    for (let i = 0; i < 50; i++) expect((await server.app.inject({ method: 'GET', url: '/api/v1/trading/fills', headers: owner.headers })).json().code).toBe('forbidden_role');
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/trading/fills', headers: owner.headers })).json().code).toBe('rate_limited');
    await server.services.accounts.setRole(owner.account.wallet, 'trader', 'test');
    // And the key's address was not blocked for the refusals of an authenticated key.
    expect(server.services.ipBlocks.check('127.0.0.1')).toBeUndefined();
  });

  it("a bare key (no secret, no signature) on a route its scopes do not cover costs its owner nothing", async () => {
    const owner = await sessionFor(server, { role: 'trader' });
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'launcher', scopes: ['tokens:write'] } });
    const key = { apiKey: created.json().apiKey as string, secret: created.json().apiSecret as string };
    clock.advance(10_000);
    // Token listings are market data, read with X-API-Key alone; this key may not read them, and
    // whoever sends it unsigned has proved nothing: refused by scope, never counted.
    for (let i = 0; i < 60; i++) {
      const res = await server.app.inject({ method: 'GET', url: `/api/v1/tokens?limit=${i + 1}`, remoteAddress: `203.0.113.${i}`, headers: { 'x-api-key': key.apiKey } });
      expect(res.json().code).toBe('insufficient_scope');
    }
    // The owner's signed requests still find the key's whole tokens budget (10 per second).
    clock.advance(1);
    const timestamp = String(clock.now());
    const url = '/api/v1/tokens?limit=1';
    const signature = hmacSignatureHex(key.secret, { timestamp, method: 'GET', pathWithQuery: url, body: '' });
    const signed = await server.app.inject({ method: 'GET', url, headers: { 'x-api-key': key.apiKey, 'x-api-timestamp': timestamp, 'x-api-signature': signature } });
    expect(signed.json().code).toBe('insufficient_scope');
    expect(signed.headers['ratelimit']).toBe('"tokens";r=9;t=1');
  });
});

describe('live: the same matrix, without the sandbox', () => {
  let live: TestServer;
  let dir: string;
  let first: number;
  const clock = new ManualClock(Date.UTC(2026, 4, 1));

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moondraft-live-matrix-'));
    const keys = path.join(dir, 'jwt.json');
    ensureKeysetFile(keys, clock.now());
    first = registered.length;
    live = await startTestServer({
      clock,
      env: { MOONDRAFT_ENV: 'live', MOONDRAFT_MASTER_KEY: Keyring.generateSpec(1), MOONDRAFT_JWT_KEYS_FILE: keys, MOONDRAFT_TRUSTED_PROXIES: '127.0.0.1', MOONDRAFT_PUBLIC_URL: 'https://api.example.test' },
    });
    // Live serves through its TLS-terminating proxy: requests arrive from it, reported as HTTPS.
    viaTlsProxy(live.app, '127.0.0.1');
  });
  afterAll(async () => {
    await live.close();
    rmSync(dir, { recursive: true, force: true });
    registered.splice(first);
  });

  it('registers every route of the contract with the same permission, except the sandbox-only ones, which do not exist', async () => {
    const liveRoutes = registered.slice(first).filter((r) => r.url.startsWith('/api/') && r.method !== 'HEAD');
    const declared = Object.fromEntries(liveRoutes.map((r) => [`${r.method} ${r.url}`, r.permission]));
    const expected = Object.fromEntries(Object.entries(CONTRACT).filter(([route]) => !route.split(' ')[1]!.startsWith('/api/v1/sandbox/')));
    expect(Object.keys(expected).length).toBeLessThan(Object.keys(CONTRACT).length);
    expect(declared).toEqual(expected);

    // Whoever asks (nobody, a trader, an admin, a trading key): a sandbox path is not found.
    const trader = await sessionFor(live, { role: 'trader' });
    const admin = await sessionFor(live, { role: 'admin' });
    const created = await live.app.inject({ method: 'POST', url: '/api/v1/keys', headers: trader.headers, payload: { label: 'live', scopes: ['orders:write'], ipWhitelist: ['203.0.113.9'] } });
    expect(created.statusCode, created.body).toBe(201);
    const key = { apiKey: created.json().apiKey as string, secret: created.json().apiSecret as string };
    for (const route of Object.keys(CONTRACT).filter((r) => r.split(' ')[1]!.startsWith('/api/v1/sandbox/'))) {
      const [method, url] = route.split(' ') as [string, string];
      const body = '{"asset":"USDC","amount":"1"}';
      clock.advance(1);
      const timestamp = String(clock.now());
      const signature = hmacSignatureHex(key.secret, { timestamp, method, pathWithQuery: url, body });
      const keyHeaders = { 'x-api-key': key.apiKey, 'x-api-timestamp': timestamp, 'x-api-signature': signature, 'x-forwarded-for': '203.0.113.9' };
      for (const [who, headers] of [['anonymous', {}], ['trader', trader.headers], ['admin', admin.headers], ['key', keyHeaders]] as const) {
        const res = await live.app.inject({ method: method as 'POST', url, headers: { ...headers, 'content-type': 'application/json' }, payload: body });
        expect({ route, who, status: res.statusCode, code: res.json().code }).toEqual({ route, who, status: 404, code: 'not_found' });
      }
    }
  });
});
