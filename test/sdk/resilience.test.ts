/**
 * The SDK's safety nets against a real server on a real port: a 429 waited out and retried to
 * success, a local clock minutes off corrected from X-API-Server-Time, and real refusals mapped to
 * MoondraftError with the server's code, status and request id (and, for a bad signature, what the
 * server signed beside what the client signed).
 */
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MoondraftClient, MoondraftError, SERVER_ERROR_CODES, type CreatedKey, type ResponseEvent, type RetryEvent, type Transport } from '@moondraft/client';
import { ERRORS } from '../../src/errors/registry.js';
import { PROBLEM_TYPE_BASE } from '../../src/http/problem.js';
import { raiseLimits, ShiftedClock, startRealServer, type RealServer } from './support.js';

let server: RealServer;
beforeAll(async () => {
  // Refusals up to 5 s apart count as one strike, so a slow machine spreading the burst out does not
  // turn it into an escalating cool-down (escalation is tested in test/ratelimit).
  server = await startRealServer({ env: { MOONDRAFT_RL_PENALTY_GRACE_MS: '5000' } });
});
afterAll(() => server?.close());

/** A new account signed in through the SDK, and an hmac key of it with the given scopes. */
async function accountWithKey(scopes: CreatedKey['scopes'] = ['account:read']) {
  const owner = new MoondraftClient({ baseUrl: server.url, env: false });
  await owner.signIn(privateKeyToAccount(generatePrivateKey()));
  const me = await owner.account.get();
  const key = await owner.keys.create({ label: 'bot', scopes });
  return { owner, me, key };
}

const keyClient = (key: CreatedKey, options: ConstructorParameters<typeof MoondraftClient>[0] = {}) =>
  new MoondraftClient({ baseUrl: server.url, env: false, apiKey: key.apiKey, apiSecret: key.apiSecret!, ...options });

describe('429: waited out and retried to success', () => {
  it('a burst above a partner limit of 3/s: the refused calls wait Retry-After (+ jitter) and then succeed, freshly signed', async () => {
    const { me, key } = await accountWithKey();
    await server.services.partnerLimits.set(me.id, { account: 3 }, 'test');
    const retries: RetryEvent[] = [];
    const responses: ResponseEvent[] = [];
    const bot = keyClient(key, { hooks: { onRetry: (e) => retries.push(e), onResponse: (e) => responses.push(e) } });
    await bot.syncTime(); // the time call is not rate limited, but keep it out of the burst

    const results = await Promise.all(Array.from({ length: 5 }, () => bot.account.get()));
    expect(results).toEqual(Array.from({ length: 5 }, () => me));

    // Exactly the two calls above the limit were refused once each, and retried after the server's Retry-After.
    const limited = responses.filter((r) => r.status === 429);
    expect(limited).toHaveLength(2);
    expect(limited[0]!.rateLimit).toEqual([{ policy: 'account', quota: 3, windowSeconds: 1, remaining: 0, resetSeconds: expect.any(Number) }]);
    expect(retries.map((r) => r.reason)).toEqual(['rate_limited', 'rate_limited']);
    for (const r of retries) {
      expect(r.error).toBeInstanceOf(MoondraftError);
      expect(r.error).toMatchObject({ code: 'rate_limited', status: 429, retryAfterMs: 1000, requestId: expect.stringMatching(/^req_/) });
      expect(r.delayMs).toBeGreaterThanOrEqual(1000);
      expect(r.delayMs).toBeLessThanOrEqual(1250);
    }
    expect(responses.filter((r) => r.status === 200 && r.path === '/api/v1/account')).toHaveLength(5);
    // The refused requests had passed the replay check before the limiter refused them: a retry with
    // the same signature would be a replayed_request. Their success shows each retry was signed afresh.
  });

  it('with no retries left, the 429 is thrown as rate_limited with its Retry-After', async () => {
    const { me, key } = await accountWithKey();
    await server.services.partnerLimits.set(me.id, { account: 1 }, 'test');
    const bot = keyClient(key, { retry: { maxRetries: 0 } });
    await bot.account.get();
    const error = (await bot.account.get().catch((e: unknown) => e)) as MoondraftError;
    expect(error).toBeInstanceOf(MoondraftError);
    expect(error).toMatchObject({ code: 'rate_limited', status: 429, retryAfterMs: expect.any(Number), attempts: 1 });
    expect(error.problem).toMatchObject({ retryAfter: error.retryAfterMs! / 1000 });
  });
});

describe('a local clock minutes off', () => {
  it.each([
    ['5 minutes behind', -5 * 60_000],
    ['5 minutes ahead', 5 * 60_000],
  ])('%s: measured before the first signed call, so signed calls just work', async (_label, skew) => {
    const { me, key } = await accountWithKey();
    await raiseLimits(server, me.id);
    const retries: RetryEvent[] = [];
    const bot = keyClient(key, { clock: new ShiftedClock(skew), hooks: { onRetry: (e) => retries.push(e) } });
    expect(await bot.account.get()).toEqual(me);
    expect(await bot.account.get()).toEqual(me);
    expect(retries).toEqual([]);
    // The estimate is the skew, reversed, to within a round trip on this machine.
    expect(Math.abs(bot.clockOffsetMs! + skew)).toBeLessThan(1000);
    expect(Math.abs(bot.serverNow() - Date.now())).toBeLessThan(1000);
  });

  it.each([
    ['5 minutes behind', -5 * 60_000],
    ['5 minutes ahead', 5 * 60_000],
  ])('%s without a prior measurement: refused once (timestamp_out_of_window), corrected from X-API-Server-Time, re-signed, accepted', async (_label, skew) => {
    const { me, key } = await accountWithKey();
    await raiseLimits(server, me.id);
    const retries: RetryEvent[] = [];
    const responses: ResponseEvent[] = [];
    const bot = keyClient(key, { clock: new ShiftedClock(skew), autoSyncTime: false, hooks: { onRetry: (e) => retries.push(e), onResponse: (e) => responses.push(e) } });
    expect(await bot.account.get()).toEqual(me);
    expect(responses.map((r) => `${r.path} ${r.status}`)).toEqual(['/api/v1/account 401', '/api/v1/account 200']);
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({ reason: 'clock_skew', error: { code: 'timestamp_out_of_window', status: 401 } });
    expect(Math.abs(bot.clockOffsetMs! + skew)).toBeLessThan(1000);
    // From now on the estimate is right the first time.
    expect(await bot.account.get()).toEqual(me);
    expect(retries).toHaveLength(1);
  });
});

describe('real refusals as MoondraftError', () => {
  it('insufficient_scope: code, status, the request id of the response, the problem members', async () => {
    const { key } = await accountWithKey(['market:read']);
    const responses: ResponseEvent[] = [];
    const bot = keyClient(key, { hooks: { onResponse: (e) => responses.push(e) } });
    const error = (await bot.account.get().catch((e: unknown) => e)) as MoondraftError;
    expect(error).toBeInstanceOf(MoondraftError);
    expect(error).toMatchObject({
      name: 'MoondraftError',
      code: 'insufficient_scope',
      status: 403,
      title: ERRORS.insufficient_scope.title,
      type: `${PROBLEM_TYPE_BASE}insufficient_scope`,
      method: 'GET',
      path: '/api/v1/account',
      attempts: 1,
    });
    expect(error.requestId).toMatch(/^req_[0-9a-f]{32}$/);
    expect(error.requestId).toBe(responses.at(-1)!.requestId);
    expect(error.problem).toMatchObject({ requiredScope: 'account:read' });
    expect(error.message).toContain('insufficient_scope');
    expect(error.message).toContain(error.requestId);
  });

  it('invalid_signature with a wrong secret: the server names what it signed, which matches what was sent', async () => {
    const { key } = await accountWithKey();
    const bot = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: key.apiKey, apiSecret: 'not-the-secret' });
    const error = (await bot.account.get().catch((e: unknown) => e)) as MoondraftError;
    expect(error).toMatchObject({ code: 'invalid_signature', status: 401, requestId: expect.stringMatching(/^req_/) });
    expect(error.signed).toEqual({ timestamp: expect.stringMatching(/^\d+$/), method: 'GET', path: '/api/v1/account', bodyLength: 0, bodySha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(error.signed).toEqual(error.sent);
    expect(error.message).toContain('the signed parts match: the key or secret is wrong');
  });

  it('invalid_signature after a proxy changed the request target: the message names the path that differs', async () => {
    const { key } = await accountWithKey();
    // A transport standing in for an intermediary that appends a query parameter after signing.
    const rewriting: Transport = {
      async send(request) {
        const url = new URL(request.url);
        url.search = '?via=proxy';
        const res = await fetch(url, { method: request.method, headers: request.headers, body: request.body, signal: request.signal, redirect: 'manual' });
        return { status: res.status, headers: res.headers, body: await res.text() };
      },
      close() {},
    };
    const bot = keyClient(key, { transport: rewriting });
    const error = (await bot.account.get().catch((e: unknown) => e)) as MoondraftError;
    expect(error).toMatchObject({ code: 'invalid_signature', status: 401 });
    expect(error.signed?.path).toBe('/api/v1/account?via=proxy');
    expect(error.sent?.path).toBe('/api/v1/account');
    expect(error.message).toContain('path: server "/api/v1/account?via=proxy", client "/api/v1/account"');
  });

  it('a replayed signed request is refused as replayed_request, and the SDK never replays one itself', async () => {
    const { me, key } = await accountWithKey();
    let last: { url: URL; headers: Record<string, string> } | undefined;
    const recording: Transport = {
      async send(request) {
        last = { url: request.url, headers: request.headers };
        const res = await fetch(request.url, { method: request.method, headers: request.headers, body: request.body, signal: request.signal });
        return { status: res.status, headers: res.headers, body: await res.text() };
      },
      close() {},
    };
    const bot = keyClient(key, { transport: recording });
    expect(await bot.account.get()).toEqual(me);
    const replay = await fetch(last!.url, { headers: last!.headers });
    expect(replay.status).toBe(401);
    expect(await replay.json()).toMatchObject({ code: 'replayed_request' });
    expect(await bot.account.get()).toEqual(me);
  });

  it('the SDK knows every error code the server can answer', () => {
    const known = new Set<string>(SERVER_ERROR_CODES);
    expect(Object.keys(ERRORS).filter((code) => !known.has(code))).toEqual([]);
  });
});
