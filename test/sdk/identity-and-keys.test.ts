/**
 * The SDK against a real Moondraft server listening on a port: wallet sign-in with a viem account,
 * the session routes, key creation and management, signed calls with hmac and ed25519 keys, and
 * access tokens refreshed before and after they expire. The response shapes the SDK declares are
 * held to what the server really answers.
 */
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generateEd25519KeyPair,
  MoondraftClient,
  MoondraftError,
  type Account,
  type ApiKeyInfo,
  type Challenge,
  type CreatedKey,
  type RegeneratedKey,
  type ResponseEvent,
  type Session,
  type SessionInfo,
  type TokenPair,
} from '@moondraft/client';
import { declaredFields, raiseLimits, sdkBackends, ShiftedClock, startRealServer, type RealServer } from './support.js';

const backends = await sdkBackends();

const ACCOUNT_FIELDS = declaredFields<Account>({ id: true, wallet: true, chain: true, role: true, createdAt: true });
const KEY_FIELD_SET: Record<keyof ApiKeyInfo, true> = {
  id: true,
  label: true,
  type: true,
  environment: true,
  prefix: true,
  status: true,
  scopes: true,
  effectiveScopes: true,
  ipWhitelist: true,
  allowedCountries: true,
  publicKey: true,
  createdAt: true,
  updatedAt: true,
  expiresAt: true,
  revokedAt: true,
  suspendedAt: true,
  suspendedReason: true,
  regeneratedAt: true,
  previousCredentialValidUntil: true,
  lastUsedAt: true,
  lastSignedAt: true,
};
const KEY_FIELDS = declaredFields<ApiKeyInfo>(KEY_FIELD_SET);
const CREATED_KEY_FIELDS = declaredFields<CreatedKey>({ ...KEY_FIELD_SET, apiKey: true, apiSecret: true });
const REGENERATED_KEY_FIELDS = declaredFields<RegeneratedKey>({ ...KEY_FIELD_SET, apiSecret: true });
const SESSION_FIELDS = declaredFields<SessionInfo>({ id: true, chain: true, createdAt: true, lastUsedAt: true, ip: true, userAgent: true, expiresAt: true, current: true });
const TOKEN_PAIR_FIELDS = declaredFields<TokenPair>({ accessToken: true, refreshToken: true, tokenType: true, expiresIn: true, sessionId: true, account: true });
const CHALLENGE_FIELDS = declaredFields<Challenge>({ message: true, nonce: true, expiresAt: true });

describe.each(backends)('the SDK against a real server (%s)', (backend) => {
  let server: RealServer;
  // The server's clock can be moved forward to expire access tokens (the reactive refresh).
  const serverClock = new ShiftedClock();

  beforeAll(async () => {
    server = await startRealServer({ backend, clock: serverClock });
  });
  afterAll(() => server?.close());

  /** A signed-in client for a new wallet, with limits raised (these tests are not about limits). */
  async function signedInClient(options: ConstructorParameters<typeof MoondraftClient>[0] = {}) {
    const wallet = privateKeyToAccount(generatePrivateKey());
    const client = new MoondraftClient({ baseUrl: server.url, env: false, ...options });
    const session = await client.signIn(wallet);
    const me = await client.account.get();
    await raiseLimits(server, me.id);
    return { client, wallet, session, me };
  }

  it('signs in with a viem account over the wire: challenge for this domain, login, then session calls', async () => {
    const wallet = privateKeyToAccount(generatePrivateKey());
    const client = new MoondraftClient({ baseUrl: server.url, env: false });

    // The challenge the server really sends has the fields the SDK declares, bound to the listening host.
    const challenge = await client.auth.challenge({ address: wallet.address, chain: 'ethereum' });
    expect(Object.keys(challenge).sort()).toEqual(CHALLENGE_FIELDS);
    expect(challenge.message).toContain(`${new URL(server.url).host} wants you to sign in with your Ethereum account:`);
    expect(typeof challenge.expiresAt).toBe('number');

    const session = await client.signIn(wallet);
    expect(session.accessToken.split('.')).toHaveLength(3);
    expect(session.refreshToken).toMatch(/.{20,}/);
    expect(session.sessionId).toMatch(/^ses_/);

    const me = await client.account.get();
    expect(Object.keys(me).sort()).toEqual(ACCOUNT_FIELDS);
    expect(me).toMatchObject({ chain: 'ethereum', role: 'trader' });
    expect(me.wallet.toLowerCase()).toBe(wallet.address.toLowerCase());
    expect(me.id).toMatch(/^acc_/);
  });

  it('login answers the token pair the SDK declares (sessionId and account included)', async () => {
    const wallet = privateKeyToAccount(generatePrivateKey());
    const client = new MoondraftClient({ baseUrl: server.url, env: false });
    const challenge = await client.auth.challenge({ address: wallet.address, chain: 'ethereum' });
    const pair = await client.auth.login({ message: challenge.message, signature: await wallet.signMessage({ message: challenge.message }) });
    expect(Object.keys(pair).sort()).toEqual(TOKEN_PAIR_FIELDS);
    expect(pair).toMatchObject({ tokenType: 'Bearer', expiresIn: 3600, account: { chain: 'ethereum', role: 'trader' } });
    expect(pair.account.wallet.toLowerCase()).toBe(wallet.address.toLowerCase());
    expect(client.session).toMatchObject({ accessToken: pair.accessToken, refreshToken: pair.refreshToken, sessionId: pair.sessionId });
  });

  it('refuses to sign a challenge for another domain (the server publishes another host)', async () => {
    const wallet = privateKeyToAccount(generatePrivateKey());
    // Same server, reached under another name: the message names 127.0.0.1:port, not localhost:port.
    const other = new MoondraftClient({ baseUrl: server.url.replace('127.0.0.1', 'localhost'), env: false });
    const error = await other.signIn(wallet).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MoondraftError);
    expect(error).toMatchObject({ code: 'challenge_mismatch', status: 0 });
    expect(other.session).toBeNull();
  });

  it('creates an hmac key with the session and makes signed calls with it', async () => {
    const { client, me } = await signedInClient();
    const created = await client.keys.create({ label: 'bot', scopes: ['account:read', 'market:read'] });
    expect(Object.keys(created).sort()).toEqual(CREATED_KEY_FIELDS);
    expect(created).toMatchObject({ type: 'hmac', environment: 'sandbox', status: 'active', scopes: ['account:read', 'market:read'], publicKey: null });
    expect(created.apiKey).toMatch(/^md_test_/);
    expect(created.apiSecret).toBeTruthy();

    const responses: ResponseEvent[] = [];
    const bot = new MoondraftClient({ baseUrl: server.url, env: { MOONDRAFT_API_KEY: created.apiKey, MOONDRAFT_API_SECRET: created.apiSecret }, hooks: { onResponse: (e) => responses.push(e) } });
    expect(bot.credentialKind).toBe('hmac');
    // Several signed calls in a row: each carries a new timestamp, so none is refused as a replay.
    for (let i = 0; i < 3; i++) expect(await bot.account.get()).toEqual(me);
    await expect(Promise.all([bot.account.get(), bot.account.get(), bot.account.get()])).resolves.toEqual([me, me, me]);
    expect(responses.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'GET /api/v1/time 200', // the one clock measurement before the first signed request
      ...Array.from({ length: 6 }, () => 'GET /api/v1/account 200'),
    ]);
    expect(responses.at(-1)!.rateLimit).toEqual([expect.objectContaining({ policy: 'account' })]);

    // The server saw a signed request: the key records it.
    const seen = await client.keys.get(created.id);
    expect(Object.keys(seen).sort()).toEqual(KEY_FIELDS);
    expect(seen.lastSignedAt).toEqual(expect.any(Number));
  });

  it('creates an ed25519 key from a public key and signs with the private key (no secret on the server)', async () => {
    const { client, me } = await signedInClient();
    const pair = generateEd25519KeyPair();
    const created = await client.keys.create({ label: 'ed', scopes: ['account:read'], type: 'ed25519', publicKey: pair.publicKey });
    expect(created).toMatchObject({ type: 'ed25519', publicKey: pair.publicKey });
    expect(created.apiSecret).toBeUndefined();

    const bot = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: created.apiKey, privateKey: pair.privateKey });
    expect(bot.credentialKind).toBe('ed25519');
    expect(await bot.account.get()).toEqual(me);
    expect(await bot.account.get()).toEqual(me);

    // Another key pair's signature is refused, and the error says the signed parts agree (so the key is wrong).
    const stranger = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: created.apiKey, privateKey: generateEd25519KeyPair().privateKey });
    const error = await stranger.account.get().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'invalid_signature', status: 401 });
    expect((error as MoondraftError).message).toContain('the signed parts match');
  });

  it('lists, reads, narrows, regenerates and revokes keys with the shapes the server answers', async () => {
    const { client, me } = await signedInClient();
    const created = await client.keys.create({ label: 'managed', scopes: ['account:read', 'market:read'] });

    const listed = await client.keys.list();
    expect(listed.map((k) => k.id)).toEqual([created.id]);
    expect(Object.keys(listed[0]!).sort()).toEqual(KEY_FIELDS);

    const narrowed = await client.keys.update(created.id, { label: 'narrowed', scopes: ['account:read'] });
    expect(narrowed).toMatchObject({ id: created.id, label: 'narrowed', scopes: ['account:read'], effectiveScopes: ['account:read'] });

    // A regeneration with a grace period: a new secret; the old one still verifies for a while.
    const regenerated = await client.keys.regenerate(created.id, { gracePeriodSeconds: 60 });
    expect(Object.keys(regenerated).sort()).toEqual(REGENERATED_KEY_FIELDS);
    expect(regenerated.apiSecret).toBeTruthy();
    expect(regenerated.apiSecret).not.toBe(created.apiSecret);
    expect(regenerated.previousCredentialValidUntil).toBeGreaterThan(Date.now());
    const withNew = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: created.apiKey, apiSecret: regenerated.apiSecret! });
    const withOld = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: created.apiKey, apiSecret: created.apiSecret! });
    expect(await withNew.account.get()).toEqual(me);
    expect(await withOld.account.get()).toEqual(me);

    const revoked = await client.keys.revoke(created.id);
    expect(revoked).toMatchObject({ id: created.id, status: 'revoked', effectiveScopes: [] });
    await expect(withNew.account.get()).rejects.toMatchObject({ code: 'key_revoked', status: 401 });

    const checklist = await client.keys.checklist();
    expect(checklist).toMatchObject({ environment: 'sandbox', total: expect.any(Number), items: expect.any(Array) });
    expect(checklist.items.length).toBe(checklist.total);
  });

  it('an API key cannot manage keys: the SDK never sends a key where a session is required, and the server refuses one anyway', async () => {
    const { client } = await signedInClient();
    const created = await client.keys.create({ label: 'k', scopes: ['account:read'] });
    const bot = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: created.apiKey, apiSecret: created.apiSecret! });
    await expect(bot.keys.list()).rejects.toMatchObject({ code: 'session_unavailable', status: 0 });
    // Through the escape hatch the key does reach the server, which refuses it.
    await expect(bot.request('GET', '/api/v1/keys')).rejects.toMatchObject({ code: 'session_required', status: 403 });
  });

  it('lists the sessions, revokes one, and logs out', async () => {
    const { client, wallet } = await signedInClient();
    const second = new MoondraftClient({ baseUrl: server.url, env: false });
    await second.signIn(wallet);

    const sessions = await client.sessions.list();
    expect(sessions).toHaveLength(2);
    for (const s of sessions) expect(Object.keys(s).sort()).toEqual(SESSION_FIELDS);
    const mine = sessions.find((s) => s.current)!;
    expect(mine.id).toBe(client.session!.sessionId);
    expect(mine).toMatchObject({ chain: 'ethereum', ip: expect.stringMatching(/^127\.0\.0\./) });

    await client.sessions.revoke(second.session!.sessionId!);
    await expect(second.account.get()).rejects.toMatchObject({ code: 'token_revoked', status: 401 });
    expect(await client.sessions.list()).toHaveLength(1);

    const revokedToken = client.session!;
    await client.auth.logout();
    expect(client.session).toBeNull();
    // Signed out, the client sends no credentials; the logged-out token itself is refused.
    await expect(client.account.get()).rejects.toMatchObject({ code: 'unauthenticated', status: 401 });
    await expect(client.sessions.list()).rejects.toMatchObject({ code: 'session_unavailable', status: 0 });
    const stale = new MoondraftClient({ baseUrl: server.url, env: false, session: revokedToken });
    await expect(stale.account.get()).rejects.toMatchObject({ code: 'token_revoked', status: 401 });
  });

  it('refreshes on demand: a new pair, the old refresh token spent', async () => {
    const changes: Array<Session | null> = [];
    const { client, me } = await signedInClient({ onSessionChange: (s) => changes.push(s) });
    const before = client.session!;
    const after = await client.auth.refresh();
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.refreshToken).not.toBe(before.refreshToken);
    expect(after.sessionId).toBe(before.sessionId);
    expect(changes.at(-1)).toEqual(after);
    expect(await client.account.get()).toEqual(me);

    // Presenting the spent refresh token (what the SDK never does) revokes the session on the server.
    const replay = new MoondraftClient({ baseUrl: server.url, env: false, session: before });
    await expect(replay.auth.refresh()).rejects.toMatchObject({ code: 'refresh_token_reused', status: 401 });
    await expect(client.account.get()).rejects.toMatchObject({ code: 'token_revoked' });
  });

  it('refreshes by itself shortly before the access token expires (local clock)', async () => {
    const localClock = new ShiftedClock();
    const calls: string[] = [];
    const { client, me } = await signedInClient({ clock: localClock, hooks: { onResponse: (e) => calls.push(`${e.method} ${e.path} ${e.status}`) } });
    const first = client.session!;
    calls.length = 0;
    await expect(client.account.get()).resolves.toEqual(me);
    expect(calls).toEqual(['GET /api/v1/account 200']);

    localClock.shiftMs = 3600_000 - 30_000; // 30 s before expiry on the local clock: inside the 60 s margin
    calls.length = 0;
    await expect(client.account.get()).resolves.toEqual(me);
    expect(calls).toEqual(['POST /api/v1/auth/refresh 200', 'GET /api/v1/account 200']);
    expect(client.session!.accessToken).not.toBe(first.accessToken);
    expect(client.session!.refreshToken).not.toBe(first.refreshToken);
    expect(client.session!.expiresAt).toBeGreaterThan(localClock.now() + 3500_000);
  });

  it('refreshes and retries once when the server says token_expired (the server clock is ahead)', async () => {
    const retries: string[] = [];
    const { client, me } = await signedInClient({ hooks: { onRetry: (e) => retries.push(`${e.reason} ${e.error.code}`) } });
    const first = client.session!;
    serverClock.shiftMs = 3600_000 + 60_000; // the token is past exp (and its tolerance) on the server only
    try {
      await expect(client.account.get()).resolves.toEqual(me);
    } finally {
      serverClock.shiftMs = 0;
    }
    expect(retries).toEqual(['token_expired token_expired']);
    expect(client.session!.accessToken).not.toBe(first.accessToken);
  });
});
