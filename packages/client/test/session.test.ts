import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { verifyMessage } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { createSiweMessage } from 'viem/siwe';
import { afterEach, describe, expect, it } from 'vitest';
import { MoondraftClient, MoondraftError, type Session } from '../src/index.js';
import { recordingSleep, sendJson, sendProblem, startWireServer, type WireRequest, type WireServer } from './support/wire-server.js';

class ManualClock {
  constructor(public t: number) {}
  now(): number {
    return this.t;
  }
}

type RefreshMode = 'rotate' | 'drop-connection' | 'fail-500' | 'fail-503' | 'rate-limit-once' | 'problem-once';

/**
 * A stand-in for the identity routes with the contract's rotation rules: every refresh spends its
 * token and issues a new pair; presenting a spent one revokes the session (`refresh_token_reused`).
 */
async function identityServer(options: { domain?: (port: number) => string; uri?: (port: number) => string; messageAddress?: string } = {}) {
  const state = {
    active: new Set<string>(),
    spent: new Set<string>(),
    accessTokens: new Set<string>(),
    /** Access tokens the server already considers expired (local clocks may think otherwise). */
    expired: new Set<string>(),
    revoked: false,
    refreshMode: 'rotate' as RefreshMode,
    refreshCalls: [] as string[],
    counter: 0,
    /** What 'problem-once' answers (once) instead of refreshing. */
    problem: { status: 408, code: 'request_timeout' },
  };
  const issue = () => {
    const n = ++state.counter;
    const pair = { accessToken: `at.${n}.${randomBytes(4).toString('hex')}`, refreshToken: `rt_${n}_${randomBytes(8).toString('hex')}`, tokenType: 'Bearer', expiresIn: 3600 };
    state.active.add(pair.refreshToken);
    state.accessTokens.add(pair.accessToken);
    return pair;
  };
  let port = 0;
  const handle = async (req: WireRequest, res: ServerResponse) => {
    const body = req.body.length ? JSON.parse(req.body.toString('utf8')) : undefined;
    if (req.target === '/api/v1/auth/challenge') {
      const nonce = randomBytes(8).toString('hex');
      const message = createSiweMessage({
        domain: options.domain ? options.domain(port) : `127.0.0.1:${port}`,
        address: (options.messageAddress ?? body.address) as `0x${string}`,
        uri: options.uri ? options.uri(port) : `http://${options.domain ? options.domain(port) : `127.0.0.1:${port}`}`,
        version: '1',
        chainId: 1,
        nonce,
        issuedAt: new Date(),
        statement: 'Sign in to Moondraft',
      });
      return sendJson(res, 200, { message, nonce, expiresAt: Date.now() + 300_000 });
    }
    if (req.target === '/api/v1/auth/login') {
      const address = /0x[0-9a-fA-F]{40}/.exec(body.message)![0] as `0x${string}`;
      const valid = await verifyMessage({ address, message: body.message, signature: body.signature });
      if (!valid) return sendProblem(res, 401, 'invalid_credentials', 'bad signature');
      return sendJson(res, 200, issue());
    }
    if (req.target === '/api/v1/auth/refresh') {
      const token = body.refreshToken as string;
      state.refreshCalls.push(token);
      if (state.refreshMode === 'drop-connection') return void res.socket?.destroy();
      if (state.refreshMode === 'fail-500') return sendProblem(res, 500, 'internal_error', 'outcome unknown');
      if (state.refreshMode === 'fail-503') return sendProblem(res, 503, 'service_unavailable', 'down');
      if (state.refreshMode === 'problem-once') {
        state.refreshMode = 'rotate';
        return sendProblem(res, state.problem.status, state.problem.code, 'refused before the token was looked at');
      }
      if (state.refreshMode === 'rate-limit-once') {
        state.refreshMode = 'rotate';
        return sendProblem(res, 429, 'rate_limited', 'slow down', { headers: { 'Retry-After': '1' } });
      }
      if (state.spent.has(token)) {
        state.revoked = true;
        return sendProblem(res, 401, 'refresh_token_reused', 'A spent refresh token was presented; the session is revoked');
      }
      if (!state.active.has(token) || state.revoked) return sendProblem(res, 401, 'invalid_token', 'unknown refresh token');
      state.active.delete(token);
      state.spent.add(token);
      return sendJson(res, 200, issue());
    }
    // Any other route: a protected one.
    const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    if (!bearer || !state.accessTokens.has(bearer) || state.revoked) return sendProblem(res, 401, 'invalid_token', 'no valid token');
    if (state.expired.has(bearer)) return sendProblem(res, 401, 'token_expired', 'The access token has expired');
    if (req.target === '/api/v1/auth/logout') {
      state.revoked = true;
      return void res.writeHead(204).end();
    }
    return sendJson(res, 200, { keys: [{ id: 'key_1', bearer }] });
  };
  const server = await startWireServer(handle);
  port = server.port;
  return { server, state };
}

let server: WireServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function signedIn(options: Parameters<typeof identityServer>[0] = {}) {
  const identity = await identityServer(options);
  server = identity.server;
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const changes: Array<Session | null> = [];
  const { sleep, delays } = recordingSleep();
  const client = new MoondraftClient({ baseUrl: server.url, env: false, clock, sleep, random: () => 0, onSessionChange: (s) => changes.push(s) });
  const account = privateKeyToAccount(generatePrivateKey());
  await client.signIn(account);
  return { ...identity, client, clock, changes, delays, account };
}

const targets = (s: WireServer) => s.requests.map((r) => r.target);

describe('wallet sign-in', () => {
  it('signs the challenge with a viem account, logs in and uses the session', async () => {
    const { client, server: s, state, account } = await signedIn();
    expect(targets(s)).toEqual(['/api/v1/auth/challenge', '/api/v1/auth/login']);
    expect(JSON.parse(s.requests[0]!.body.toString('utf8'))).toEqual({ address: account.address, chain: 'ethereum' });
    expect(client.session?.accessToken).toMatch(/^at\.1\./);
    const keys = await client.keys.list();
    expect(keys).toEqual([expect.objectContaining({ bearer: client.session!.accessToken })]);
    expect(s.requests.at(-1)!.headers['x-api-key']).toBeUndefined();
    expect(state.counter).toBe(1);
  });

  it('uses the session for session-only routes and the API key elsewhere when it has both', async () => {
    const identity = await identityServer();
    server = identity.server;
    const client = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: 'md_test_both', apiSecret: 'sec', autoSyncTime: false });
    await client.signIn(privateKeyToAccount(generatePrivateKey()));
    await client.keys.list();
    const keysRequest = server.requests.at(-1)!;
    expect(keysRequest.headers.authorization).toMatch(/^Bearer at\./);
    expect(keysRequest.headers['x-api-key']).toBeUndefined();
    await client.account.get().catch(() => undefined); // this stand-in server refuses keys; only the headers matter
    const accountRequest = server.requests.at(-1)!;
    expect(accountRequest.headers['x-api-key']).toBe('md_test_both');
    expect(accountRequest.headers.authorization).toBeUndefined();
  });

  it('refuses to sign a message for another domain, or for another address', async () => {
    const identity = await identityServer({ domain: () => 'moondraft.evil.example' });
    server = identity.server;
    const client = new MoondraftClient({ baseUrl: server.url, env: false });
    const account = privateKeyToAccount(generatePrivateKey());
    const error = await client.signIn(account).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'challenge_mismatch', detail: expect.stringContaining('moondraft.evil.example') });
    expect(targets(server)).toEqual(['/api/v1/auth/challenge']); // never logged in
    expect(client.session).toBeNull();
    // A published host other than baseUrl's is allowed when named.
    await expect(client.signIn(account, { expectedDomain: 'moondraft.evil.example' })).resolves.toMatchObject({ accessToken: expect.any(String) });

    await server.close();
    const other = await identityServer({ messageAddress: privateKeyToAccount(generatePrivateKey()).address });
    server = other.server;
    const c2 = new MoondraftClient({ baseUrl: server.url, env: false });
    await expect(c2.signIn(account)).rejects.toMatchObject({ code: 'challenge_mismatch', detail: expect.stringContaining('address') });
    expect(targets(server)).toEqual(['/api/v1/auth/challenge']);
  });

  it('refuses to sign a message whose URI is on another host than its domain (the server it names is not the one asking)', async () => {
    const identity = await identityServer({ uri: () => 'https://moondraft.evil.example/login' });
    server = identity.server;
    const client = new MoondraftClient({ baseUrl: server.url, env: false });
    const error = await client.signIn(privateKeyToAccount(generatePrivateKey())).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'challenge_mismatch', detail: expect.stringContaining('moondraft.evil.example') });
    expect(targets(server)).toEqual(['/api/v1/auth/challenge']);
    expect(client.session).toBeNull();
  });
});

describe('access-token refresh and rotation', () => {
  it('refreshes shortly before expiry, keeps only the newest refresh token, and reports each rotation', async () => {
    const { client, clock, server: s, state, changes } = await signedIn();
    const first = client.session!;
    clock.t = first.expiresAt - 30_000; // inside the 60 s margin
    await client.keys.list();
    expect(targets(s).slice(2)).toEqual(['/api/v1/auth/refresh', '/api/v1/keys']);
    expect(state.refreshCalls).toEqual([first.refreshToken]);
    const second = client.session!;
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(state.active.has(second.refreshToken!)).toBe(true);
    expect(s.requests.at(-1)!.headers.authorization).toBe(`Bearer ${second.accessToken}`);
    expect(second.expiresAt).toBe(clock.t + 3600_000);
    expect(changes.map((c) => c?.refreshToken)).toEqual([first.refreshToken, null, second.refreshToken]);
  });

  it('shares one refresh among concurrent calls (a second one would present a spent token)', async () => {
    const { client, clock, state } = await signedIn();
    clock.t = client.session!.expiresAt + 1; // expired
    const results = await Promise.all(Array.from({ length: 5 }, () => client.keys.list()));
    expect(results).toHaveLength(5);
    expect(state.refreshCalls).toHaveLength(1);
    expect(state.revoked).toBe(false);
    await Promise.all([client.auth.refresh(), client.auth.refresh()]);
    expect(state.refreshCalls).toHaveLength(2);
    expect(new Set(state.refreshCalls).size).toBe(2);
  });

  it('refreshes and retries once when the server answers token_expired', async () => {
    const { client, server: s, state } = await signedIn();
    state.expired.add(client.session!.accessToken); // the server's clock says expired; ours does not
    await expect(client.keys.list()).resolves.toHaveLength(1);
    expect(targets(s).slice(2)).toEqual(['/api/v1/keys', '/api/v1/auth/refresh', '/api/v1/keys']);
  });

  it('never presents a refresh token again after a refresh whose answer was lost', async () => {
    const { client, clock, server: s, state } = await signedIn();
    const spent = client.session!.refreshToken!;
    state.refreshMode = 'drop-connection';
    clock.t = client.session!.expiresAt + 1;
    state.expired.add(client.session!.accessToken);
    await expect(client.keys.list()).rejects.toMatchObject({ code: 'network_error' });
    expect(state.refreshCalls).toEqual([spent]); // not retried
    expect(client.session).toMatchObject({ refreshToken: null });

    state.refreshMode = 'rotate';
    await expect(client.keys.list()).rejects.toMatchObject({ code: 'session_unavailable' });
    await expect(client.auth.refresh()).rejects.toMatchObject({ code: 'session_unavailable' });
    expect(state.refreshCalls).toEqual([spent]);
    expect(state.revoked).toBe(false); // no reuse was ever presented
    expect(targets(s).filter((t) => t === '/api/v1/auth/refresh')).toHaveLength(1);
  });

  it('keeps the refresh token when the refresh never left (connection refused), so a server restart does not end the session', async () => {
    const identity = await identityServer();
    server = identity.server;
    const gone = await startWireServer(() => {});
    const refusedUrl = gone.url;
    await gone.close();
    let down = false;
    // While "down", every request goes to a closed port: a real ECONNREFUSED, nothing sent.
    const viaFetch: typeof fetch = (input, init) => (down ? fetch(new URL(new URL(String(input)).pathname, refusedUrl), init) : fetch(input, init));
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const client = new MoondraftClient({ baseUrl: server.url, env: false, clock, sleep: async () => {}, random: () => 0, fetch: viaFetch });
    await client.signIn(privateKeyToAccount(generatePrivateKey()));
    const token = client.session!.refreshToken!;

    down = true;
    clock.t = client.session!.expiresAt - 10_000; // inside the margin: the refresh comes first
    await expect(client.keys.list()).rejects.toMatchObject({ code: 'network_error' });
    expect(client.session!.refreshToken).toBe(token); // never presented, so still good

    down = false;
    await expect(client.keys.list()).resolves.toHaveLength(1);
    expect(identity.state.refreshCalls).toEqual([token]);
    expect(client.session!.refreshToken).not.toBe(token); // rotated
    expect(identity.state.revoked).toBe(false);
  });

  it('keeps using a still-valid access token when an early refresh fails with a 500 (outcome unknown), and never presents its token again', async () => {
    const { client, clock, state } = await signedIn();
    state.refreshMode = 'fail-500';
    clock.t = client.session!.expiresAt - 10_000; // still valid, inside the margin
    await expect(client.keys.list()).resolves.toHaveLength(1);
    expect(state.refreshCalls).toHaveLength(1);
    expect(client.session!.refreshToken).toBeNull();
    await client.keys.list();
    expect(state.refreshCalls).toHaveLength(1);
  });

  it('keeps the refresh token when the server answered 503 service_unavailable (nothing was done), and renews with it once the server is back', async () => {
    const { client, clock, state } = await signedIn();
    const token = client.session!.refreshToken!;
    state.refreshMode = 'fail-503';
    clock.t = client.session!.expiresAt - 10_000; // still valid, inside the margin
    await expect(client.keys.list()).resolves.toHaveLength(1);
    expect(client.session!.refreshToken).toBe(token);
    state.refreshMode = 'rotate';
    await expect(client.keys.list()).resolves.toHaveLength(1);
    expect(state.refreshCalls).toEqual([token, token]);
    expect(client.session!.refreshToken).not.toBe(token);
    expect(state.revoked).toBe(false);
  });

  it('retries a refresh refused by the rate limiter with the same (unspent) token', async () => {
    const { client, clock, state, delays } = await signedIn();
    const token = client.session!.refreshToken!;
    state.refreshMode = 'rate-limit-once';
    clock.t = client.session!.expiresAt + 1;
    await expect(client.keys.list()).resolves.toHaveLength(1);
    expect(state.refreshCalls).toEqual([token, token]);
    expect(delays).toEqual([1000]);
    expect(state.revoked).toBe(false);
  });

  it.each([
    [408, 'request_timeout'],
    [403, 'ip_blocked'],
    [403, 'https_required'],
    [413, 'payload_too_large'],
  ])('keeps the refresh token when the server refused the refresh (%i %s) before looking at the token', async (status, code) => {
    const { client, state, changes } = await signedIn();
    const token = client.session!.refreshToken!;
    state.problem = { status, code };
    state.refreshMode = 'problem-once';
    await expect(client.auth.refresh()).rejects.toMatchObject({ code, status });
    expect(client.session?.refreshToken).toBe(token);
    expect(changes.at(-1)).not.toBeNull();
    // The token was never spent: the next refresh rotates it, and nothing was revoked.
    await client.auth.refresh();
    expect(state.refreshCalls).toEqual([token, token]);
    expect(state.revoked).toBe(false);
    expect(client.session!.refreshToken).not.toBe(token);
  });

  it('ends the session when the server says the refresh token was reused', async () => {
    const { client, state, changes } = await signedIn();
    const token = client.session!.refreshToken!;
    state.spent.add(token); // as if another copy of this client had used it
    state.active.delete(token);
    const error = await client.auth.refresh().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MoondraftError);
    expect(error).toMatchObject({ code: 'refresh_token_reused', status: 401 });
    expect(client.session).toBeNull();
    expect(changes.at(-1)).toBeNull();
    await expect(client.keys.list()).rejects.toMatchObject({ code: 'session_unavailable' });
  });

  it('logs out: revokes on the server, then forgets the session', async () => {
    const { client, server: s } = await signedIn();
    await client.auth.logout();
    expect(targets(s).at(-1)).toBe('/api/v1/auth/logout');
    expect(s.requests.at(-1)!.headers['content-type']).toBeUndefined();
    expect(client.session).toBeNull();
  });

  it('resumes a stored session', async () => {
    const { client, server: s } = await signedIn();
    const stored = client.session!;
    const resumed = new MoondraftClient({ baseUrl: s.url, env: false, session: stored, clock: { now: () => Date.UTC(2026, 0, 1) } });
    await expect(resumed.keys.list()).resolves.toEqual([expect.objectContaining({ bearer: stored.accessToken })]);
  });
});
