import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import type { SecurityEvent } from '../../src/security/events/index.js';
import { hmacSignatureHex } from '../../src/security/signing/index.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';

const scaleout = (await serviceAvailable('redis')) && (await serviceAvailable('postgres'));
const backends = (['embedded', 'scaleout'] as const).filter((b) => b === 'embedded' || scaleout);

type Res = { statusCode: number; headers: Record<string, unknown>; json(): any };

function expectProblem(res: Res, code: string, status: number) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ code, status });
}

describe.each(backends)('rate limits over HTTP (%s)', (backend) => {
  let server: TestServer;
  const events: SecurityEvent[] = [];
  // Windows run on this clock, not the machine's (or Redis's): a loaded machine taking over a
  // second for a test's hundred requests would otherwise see the window slide under them.
  const clock = new ManualClock(Date.now());
  beforeAll(async () => {
    // Grace 0: every refusal is a strike, so escalation shows request by request.
    server = await startTestServer({ backend, clock, env: { MOONDRAFT_RL_PENALTY_GRACE_MS: '0' } });
    server.services.events.subscribe((e) => {
      events.push(e);
    });
  });
  afterAll(() => server.close());

  const account = (headers: Record<string, string>) => server.app.inject({ method: 'GET', url: '/api/v1/account', headers });

  it('every limited response carries RateLimit-Policy and RateLimit; unlimited routes do not', async () => {
    const s = await sessionFor(server);
    const first = await account(s.headers);
    expect(first.statusCode).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"account";q=25;w=1');
    expect(first.headers['ratelimit']).toBe('"account";r=24;t=1');
    expect((await account(s.headers)).headers['ratelimit']).toBe('"account";r=23;t=1');
    const admin = await sessionFor(server, { role: 'admin' });
    const unlimited = await server.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', headers: admin.headers });
    expect(unlimited.statusCode).toBe(200);
    expect(unlimited.headers['ratelimit-policy']).toBeUndefined();
    expect((await server.app.inject({ method: 'GET', url: '/health' })).headers['ratelimit']).toBeUndefined();
  });

  it('refuses beyond the limit with 429 rate_limited, Retry-After in whole seconds, and the headers', async () => {
    const s = await sessionFor(server);
    for (let i = 0; i < 25; i++) expect((await account(s.headers)).statusCode).toBe(200);
    const res = await account(s.headers);
    expectProblem(res, 'rate_limited', 429);
    expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(res.headers['ratelimit-policy']).toBe('"account";q=25;w=1');
    expect(res.headers['ratelimit']).toMatch(/^"account";r=0;t=[1-9]\d*$/);
    expect(res.json().retryAfter).toBe(Number(res.headers['retry-after']));
    // Another account is not affected: limits are per account for sessions.
    expect((await account((await sessionFor(server)).headers)).statusCode).toBe(200);
  });

  it('counts requests the permission matrix refuses: a caller without the right meets 429, not endless 403s', async () => {
    const auditor = await sessionFor(server, { role: 'auditor' });
    const order = () => server.app.inject({ method: 'POST', url: '/api/v1/trading/orders', headers: auditor.headers, payload: { market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' } });
    const statuses: number[] = [];
    for (let i = 0; i < 50; i++) statuses.push((await order()).statusCode);
    expect(new Set(statuses)).toEqual(new Set([403]));
    const res = await order();
    expectProblem(res, 'rate_limited', 429);
    expect(res.headers['ratelimit-policy']).toBe('"trading";q=50;w=1');
  });

  it('anonymous requests to routes that need credentials are answered 401 each time, and every one counts towards a block', async () => {
    // Each 401 is a failure the DDoS guard counts against the address; a 429 is not, so a category
    // limit in front of the permission check (tokens: 10/s) would shield a flood from the block.
    const from = '198.51.100.77';
    const codes: string[] = [];
    for (let i = 0; i < server.config.ddos.clientErrorsPerSec; i++) {
      codes.push((await server.app.inject({ method: 'GET', url: '/api/v1/tokens', remoteAddress: from })).json().code);
    }
    expect(new Set(codes)).toEqual(new Set(['unauthenticated']));
    // (Counted after each response; with Redis the block arrives a moment later.)
    await vi.waitFor(() => expect(server.services.ipBlocks.check(from)).toBeDefined(), { timeout: 5000, interval: 20 });
    expectProblem(await server.app.inject({ method: 'GET', url: '/api/v1/tokens', remoteAddress: from }), 'ip_blocked', 403);
  });

  it('counts refusals on routes outside the categories (admin, audit) as account requests of the caller', async () => {
    const trader = await sessionFor(server);
    const probe = () => server.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', headers: trader.headers });
    for (let i = 0; i < 25; i++) expectProblem(await probe(), 'forbidden_role', 403);
    const res = await probe();
    expectProblem(res, 'rate_limited', 429);
    expect(res.headers['ratelimit-policy']).toBe('"account";q=25;w=1');
    // Those who may use the route are not limited there (unlimited above).
    const admin = await sessionFor(server, { role: 'admin' });
    for (let i = 0; i < 30; i++) expect((await server.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', headers: admin.headers })).statusCode).toBe(200);
  });

  it('escalates the cool-down while the client keeps sending, then suspends it, once, as a security event', async () => {
    const s = await sessionFor(server);
    for (let i = 0; i < 25; i++) await account(s.headers);
    const retryAfter: string[] = [];
    for (let i = 0; i < 9; i++) {
      const res = await account(s.headers);
      expectProblem(res, 'rate_limited', 429);
      retryAfter.push(res.headers['retry-after'] as string);
    }
    expect(retryAfter).toEqual(['1', '1', '2', '4', '8', '16', '32', '60', '60']);
    const suspended = await account(s.headers);
    expectProblem(suspended, 'temporarily_suspended', 429);
    expect(suspended.headers['retry-after']).toBe('300');
    expect(suspended.headers['ratelimit']).toBe('"account";r=0;t=300');
    expectProblem(await account(s.headers), 'temporarily_suspended', 429);
    const recorded = events.filter((e) => e.type === 'ratelimit.suspended' && e.accountId === s.account.id);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({ category: 'account', subject: `a:${s.account.id}` });
    expect(await server.services.metrics.text()).toMatch(/moondraft_ratelimit_suspensions_total\{category="account"\} [1-9]/);
  });

  it("a stranger's unsigned requests with a key (market data) spend and suspend only their own share, never the owner's budget", async () => {
    // The key id travels in every request (and in logs): whoever saw it may send it unsigned,
    // which market data accepts. The owner's signed and unsigned requests must still go through.
    const owner = await sessionFor(server);
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'bot', scopes: ['market:read'] } });
    expect(created.statusCode).toBe(201);
    const { apiKey, apiSecret } = created.json() as { apiKey: string; apiSecret: string };
    const url = '/api/v1/market/markets';
    const unsigned = (remoteAddress: string) => server.app.inject({ method: 'GET', url, remoteAddress, headers: { 'x-api-key': apiKey } });
    // Each signed request a timestamp of its own: `now - n` repeats one when the clock moves on by
    // a millisecond between two requests (a replay, refused).
    let last = 0;
    const signedFrom = (remoteAddress: string) => {
      last = Math.max(server.services.clock.now(), last + 1);
      const timestamp = String(last);
      return server.app.inject({ method: 'GET', url, remoteAddress, headers: { 'x-api-key': apiKey, 'x-api-timestamp': timestamp, 'x-api-signature': hmacSignatureHex(apiSecret, { timestamp, method: 'GET', pathWithQuery: url, body: '' }) } });
    };
    const stranger = '203.0.113.50';
    for (let i = 0; i < 100; i++) expect((await unsigned(stranger)).statusCode).toBe(200);
    for (let i = 0; i < 9; i++) expectProblem(await unsigned(stranger), 'rate_limited', 429);
    expectProblem(await unsigned(stranger), 'temporarily_suspended', 429);
    const suspension = events.filter((e) => e.type === 'ratelimit.suspended' && e.accountId === owner.account.id);
    expect(suspension).toEqual([expect.objectContaining({ category: 'market', subject: expect.stringMatching(/^k:.+@203\.0\.113\.50$/) })]);
    // The owner, from its own address: signed and unsigned, the full budget of each.
    const own = '198.51.100.60';
    const first = await signedFrom(own);
    expect(first.statusCode).toBe(200);
    expect(first.headers['ratelimit']).toBe('"market";r=99;t=1');
    const bare = await unsigned(own);
    expect(bare.statusCode).toBe(200);
    expect(bare.headers['ratelimit']).toBe('"market";r=99;t=1');
    // A signed request from the stranger's network is the key's own (whoever signs holds the secret).
    expect((await signedFrom(stranger)).headers['ratelimit']).toBe('"market";r=98;t=1');

    // Raised (partner) limits are for signed requests only: unsigned ones keep the default (else
    // anyone who saw the key id would get them, once per address); lowered limits apply to both.
    await server.services.partnerLimits.set(owner.account.id, { market: 1000 }, 'test');
    expect((await signedFrom(own)).headers['ratelimit-policy']).toBe('"market";q=1000;w=1');
    expect((await unsigned('198.51.100.61')).headers['ratelimit-policy']).toBe('"market";q=100;w=1');
    await server.services.partnerLimits.set(owner.account.id, { market: 10 }, 'test');
    expect((await signedFrom(own)).headers['ratelimit-policy']).toBe('"market";q=10;w=1');
    expect((await unsigned('198.51.100.62')).headers['ratelimit-policy']).toBe('"market";q=10;w=1');
  });

  it("a bare key the matrix refuses (no market:read) meets 429 and suspension in its sender's own share, not an endless stream of free 403s", async () => {
    // Anyone holding any key (their own will do) may send it unsigned to market data. A key without
    // market:read is refused there by scope; the request proved nothing, so it must not spend the
    // owner's budget, but it must not go unmetered either: neither the limiter nor the failure
    // counter (which counts only requests without credentials) would ever stop such a flood.
    const owner = await sessionFor(server);
    const created = await server.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'reader', scopes: ['account:read'] } });
    expect(created.statusCode).toBe(201);
    const { apiKey, apiSecret } = created.json() as { apiKey: string; apiSecret: string };
    const url = '/api/v1/market/markets';
    const sender = '203.0.113.70';
    const bare = () => server.app.inject({ method: 'GET', url, remoteAddress: sender, headers: { 'x-api-key': apiKey } });
    for (let i = 0; i < 100; i++) expectProblem(await bare(), 'insufficient_scope', 403);
    for (let i = 0; i < 9; i++) expectProblem(await bare(), 'rate_limited', 429);
    expectProblem(await bare(), 'temporarily_suspended', 429);
    // Only that sender's share: the owner's signed requests (any address) find the key's whole budget.
    const timestamp = String(server.services.clock.now());
    const signature = hmacSignatureHex(apiSecret, { timestamp, method: 'GET', pathWithQuery: '/api/v1/account', body: '' });
    const own = await server.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: sender, headers: { 'x-api-key': apiKey, 'x-api-timestamp': timestamp, 'x-api-signature': signature } });
    expect(own.statusCode).toBe(200);
    expect(own.headers['ratelimit']).toBe('"account";r=24;t=1');
    const fromElsewhere = await server.app.inject({ method: 'GET', url, remoteAddress: '198.51.100.70', headers: { 'x-api-key': apiKey } });
    expectProblem(fromElsewhere, 'insufficient_scope', 403);
  });

  it('partner limits: an admin raises or lowers an account’s limits for all its sessions', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const partner = await sessionFor(server);
    const put = (body: unknown) => server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${partner.account.wallet}/limits`, headers: admin.headers, payload: body as object });

    const raised = await put({ account: 60, market: 1000 });
    expect(raised.statusCode).toBe(200);
    expect(raised.json()).toMatchObject({ accountId: partner.account.id, overrides: { account: 60, market: 1000 }, limits: { account: 60, market: 1000, trading: 50, tokens: 10 } });
    expect((await account(partner.headers)).headers['ratelimit-policy']).toBe('"account";q=60;w=1');
    const second = await sessionFor(server, { wallet: partner.account.wallet }); // another session, same account
    expect((await account(second.headers)).headers['ratelimit']).toBe('"account";r=58;t=1');

    expect((await put({ account: 3 })).statusCode).toBe(200);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await account(partner.headers)).statusCode);
    expect(statuses).toEqual([200, 429, 429]); // the window already held two of this account's hits

    const read = await server.app.inject({ method: 'GET', url: `/api/v1/admin/accounts/${partner.account.wallet.toUpperCase().replace('0X', '0x')}/limits`, headers: admin.headers });
    expect(read.json()).toMatchObject({ overrides: { account: 3 }, limits: { account: 3, market: 100 }, updatedBy: admin.account.id });

    // docs/API.md: null resets a category to its default, as leaving it out does.
    const nulled = await put({ account: null, market: 500 });
    expect(nulled.statusCode).toBe(200);
    expect(nulled.json()).toMatchObject({ overrides: { market: 500 }, limits: { account: 25, market: 500 } });
    expect(nulled.json().overrides).not.toHaveProperty('account');
    expect((await put({})).json()).toMatchObject({ overrides: {}, limits: { account: 25 }, updatedAt: null });
    expect(events.some((e) => e.type === 'ratelimit.limits_changed' && e.accountId === partner.account.id)).toBe(true);
  });

  it('the sandbox faucet counts as account requests: tiny grants cannot be asked at any rate', async () => {
    const s = await sessionFor(server);
    const grant = () => server.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: s.headers, payload: { asset: 'USDC', amount: '0.000001' } });
    const first = await grant();
    expect(first.statusCode).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"account";q=25;w=1');
    const statuses = [];
    for (let i = 0; i < 25; i++) statuses.push((await grant()).statusCode);
    expect(statuses.filter((c) => c === 429)).toHaveLength(1);
  });

  it('partner limits: validated, admin only, known accounts only', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const trader = await sessionFor(server);
    const url = `/api/v1/admin/accounts/${trader.account.wallet}/limits`;
    for (const body of [{ account: 0 }, { account: 1.5 }, { account: '10' }, { account: 10, extra: 1 }, { account: 100_001 }]) {
      expectProblem(await server.app.inject({ method: 'PUT', url, headers: admin.headers, payload: body }), 'validation_failed', 400);
    }
    expectProblem(await server.app.inject({ method: 'PUT', url, headers: trader.headers, payload: { account: 99 } }), 'forbidden_role', 403);
    expectProblem(await server.app.inject({ method: 'PUT', url, payload: { account: 99 } }), 'unauthenticated', 401);
    expectProblem(await server.app.inject({ method: 'PUT', url: '/api/v1/admin/accounts/0x0000000000000000000000000000000000000001/limits', headers: admin.headers, payload: { account: 99 } }), 'not_found', 404);
    expectProblem(await server.app.inject({ method: 'PUT', url: '/api/v1/admin/accounts/nope/limits', headers: admin.headers, payload: { account: 99 } }), 'validation_failed', 400);
    // Four eyes: an admin's own limits are set by another admin, and the refusal changes nothing.
    const own = `/api/v1/admin/accounts/${admin.account.wallet}/limits`;
    expectProblem(await server.app.inject({ method: 'PUT', url: own, headers: admin.headers, payload: { account: 100_000 } }), 'four_eyes_required', 403);
    expect((await server.app.inject({ method: 'GET', url: own, headers: admin.headers })).json()).toMatchObject({ overrides: {}, limits: { account: 25 }, updatedAt: null });
    const other = await sessionFor(server, { role: 'admin' });
    expect((await server.app.inject({ method: 'PUT', url: own, headers: other.headers, payload: { account: 60 } })).json()).toMatchObject({ overrides: { account: 60 }, updatedBy: other.account.id });
  });

  it('holds unauthenticated traffic to per-address ceilings, tighter on sign-in; IPv6 per /64', async () => {
    const get = (url: string, remoteAddress: string) => server.app.inject({ method: 'GET', url, remoteAddress });
    const statuses: number[] = [];
    for (let i = 0; i < 51; i++) statuses.push((await get('/api/v1/time', '203.0.113.10')).statusCode);
    expect(statuses.filter((s) => s === 200)).toHaveLength(50);
    const refused = await get('/api/v1/time', '203.0.113.10');
    expectProblem(refused, 'rate_limited', 429);
    expect(refused.headers['ratelimit-policy']).toBe('"public";q=50;w=1');
    expect((await get('/api/v1/time', '203.0.113.11')).statusCode).toBe(200);

    // Sign-in routes: 10 per second per address (the identity routes answer behind this ceiling).
    const signin: number[] = [];
    for (let i = 0; i < 11; i++) signin.push((await get('/api/v1/auth/challenge', i % 2 ? '2001:db8:7::1' : '2001:db8:7::2')).statusCode);
    expect(signin.slice(0, 10).every((s) => s !== 429)).toBe(true);
    expect(signin[10]).toBe(429);
    expect((await get('/api/v1/auth/challenge', '2001:db8:7:1::1')).statusCode).not.toBe(429); // another /64
  });

  it('does not hold loopback (an undeclared local proxy) to the unauthenticated ceilings', async () => {
    for (let i = 0; i < 60; i++) expect((await server.app.inject({ method: 'GET', url: '/api/v1/time' })).statusCode).toBe(200);
  });

  it('exports allowed, limited and suspended counts by category', async () => {
    const text = await server.services.metrics.text();
    expect(text).toMatch(/moondraft_ratelimit_decisions_total\{category="account",outcome="allowed"\} [1-9]/);
    expect(text).toMatch(/moondraft_ratelimit_decisions_total\{category="account",outcome="limited"\} [1-9]/);
    expect(text).toMatch(/moondraft_ratelimit_decisions_total\{category="account",outcome="suspended"\} [1-9]/);
    expect(text).toMatch(/moondraft_ratelimit_decisions_total\{category="public",outcome="limited"\} [1-9]/);
  });
});

describe('penalties expire (embedded, manual clock)', () => {
  let server: TestServer;
  const clock = new ManualClock();
  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  it('a client that waits out its cool-down is admitted again; a suspension ends after its period', async () => {
    const s = await sessionFor(server);
    const get = () => server.app.inject({ method: 'GET', url: '/api/v1/account', headers: s.headers });
    for (let i = 0; i < 25; i++) await get();
    expect((await get()).statusCode).toBe(429); // strike 1
    clock.advance(300); // past the grace period
    const second = await get(); // strike 2: 1 s cool-down
    expect(second.headers['retry-after']).toBe('1');
    clock.advance(1000);
    expect((await get()).statusCode).toBe(200);

    // Hammering through penalties: suspended for the configured 5 minutes.
    let last = await get();
    for (let i = 0; i < 40 && last.json().code !== 'temporarily_suspended'; i++) {
      clock.advance(300);
      for (let j = 0; j < 30 && last.json().code !== 'temporarily_suspended'; j++) last = await get();
    }
    expect(last.json().code).toBe('temporarily_suspended');
    const retryAfter = Number(last.headers['retry-after']);
    expect(retryAfter).toBe(300);
    clock.advance(retryAfter * 1000 - 1000);
    expect((await get()).json().code).toBe('temporarily_suspended');
    clock.advance(61_000);
    expect((await get()).statusCode).toBe(200);
  });
});
