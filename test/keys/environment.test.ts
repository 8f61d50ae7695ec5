import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { openStore } from '../../src/store/db.js';
import { viaTlsProxy } from '../support/server.js';
import { code, createKey, credentialOf, session, signed, startKeysServer, type CreatedKey, type KeysTestServer } from './support.js';

/**
 * A sandbox server creates a key in a SQLite file; a live server is then started on that same
 * database (someone promoted the sandbox database): the sandbox key is refused there. Start-up
 * refuses such a store when it records its environment: the record is removed here (a store the
 * sandbox wrote before the record existed), to check the key's own defence.
 */
const clock = new ManualClock(Date.UTC(2026, 5, 1));
const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-keys-env-'));
let sandboxKey: CreatedKey;
let live: KeysTestServer;

beforeAll(async () => {
  const sandbox = await startKeysServer({ clock, dataDir, sqliteFile: true });
  try {
    const owner = await session(sandbox);
    sandboxKey = await createKey(sandbox, owner.headers, { label: 'sandbox', scopes: ['orders:read'] });
  } finally {
    await sandbox.close();
  }
  const store = await openStore({ dataDir });
  try {
    await store.db.deleteFrom('deployment_environment').execute();
  } finally {
    await store.close();
  }
  live = await startKeysServer({
    clock,
    dataDir,
    sqliteFile: true,
    env: {
      MOONDRAFT_ENV: 'live',
      MOONDRAFT_MASTER_KEY: readFileSync(path.join(dataDir, 'master.key'), 'utf8').trim(),
      MOONDRAFT_JWT_KEYS_FILE: path.join(dataDir, 'jwt-signing-keys.json'),
      MOONDRAFT_TRUSTED_PROXIES: '10.9.0.1',
      MOONDRAFT_PUBLIC_URL: 'https://api.example.test',
    },
  });
  // Live serves through its TLS-terminating proxy: requests come from it, reported as HTTPS.
  viaTlsProxy(live.app, '10.9.0.1');
});
afterAll(async () => {
  await live?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('live environment', () => {
  it('refuses a sandbox key with wrong_environment, even when its row is in the database', async () => {
    const res = await signed(live, credentialOf(sandboxKey), { url: '/api/v1/trading/probe', remoteAddress: '10.9.0.1' });
    expect(code(res)).toBe('wrong_environment');
  });

  it('issues md_live_ keys, for at most 365 days', async () => {
    const owner = await session(live);
    const tooLong = await live.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'l', scopes: ['orders:read'], expiresInDays: 366 } });
    expect(code(tooLong)).toBe('validation_failed');
    expect(tooLong.json().detail).toContain('365');
    const k = await createKey(live, owner.headers, { label: 'live', scopes: ['orders:read'], expiresInDays: 365, ipWhitelist: ['203.0.113.9'] });
    expect(k.apiKey).toMatch(/^md_live_/);
    expect(k.environment).toBe('live');
  });

  it('takes the client address from X-Forwarded-For only when the peer is a trusted proxy', async () => {
    const owner = await session(live);
    const k = await createKey(live, owner.headers, { label: 'behind proxy', scopes: ['orders:read'], ipWhitelist: ['203.0.113.9'] });
    const cred = credentialOf(k);
    const url = '/api/v1/trading/probe';
    expect((await signed(live, cred, { url, remoteAddress: '10.9.0.1', headers: { 'x-forwarded-for': '203.0.113.9' } })).statusCode).toBe(200);
    // A client cannot prepend its own claim: the rightmost address not a trusted proxy counts.
    expect(code(await signed(live, cred, { url, remoteAddress: '10.9.0.1', headers: { 'x-forwarded-for': '203.0.113.9, 198.51.100.66' } }))).toBe('ip_not_allowed');
    // An untrusted peer's X-Forwarded-* headers are ignored: a client reaching this plain-HTTP port
    // around the proxy is refused for sending credentials in the clear, before its address counts.
    expect(code(await signed(live, cred, { url, remoteAddress: '10.9.0.2', headers: { 'x-forwarded-for': '203.0.113.9' } }))).toBe('https_required');
    expect(code(await signed(live, cred, { url, remoteAddress: '10.9.0.1' }))).toBe('ip_not_allowed');
  });

  it('checklist advice speaks of live keys', async () => {
    const owner = await session(live);
    await createKey(live, owner.headers, { label: 'no whitelist', scopes: ['orders:read'] });
    const res = await live.app.inject({ method: 'GET', url: '/api/v1/security/checklist', headers: owner.headers });
    const item = res.json().items.find((i: { id: string }) => i.id === 'ip_whitelisting');
    expect(res.json().environment).toBe('live');
    expect(item).toMatchObject({ result: 'fail' });
    expect(item.advice).toContain('live key');
  });
});

describe('live behind a TLS-terminating proxy: credentials only over HTTPS', () => {
  const url = '/api/v1/account';
  const from = async (headers: Record<string, string>, remoteAddress = '10.9.0.1') => {
    const owner = await session(live);
    return live.app.inject({ method: 'GET', url, remoteAddress, headers: { ...owner.headers, ...headers } });
  };

  it('accepts a token the proxy reports as sent over HTTPS', async () => {
    expect((await from({ 'x-forwarded-proto': 'https' })).statusCode).toBe(200);
  });

  it('refuses one the proxy reports as plain HTTP, or does not report at all (403 https_required)', async () => {
    expect(code(await from({ 'x-forwarded-proto': 'http' }))).toBe('https_required');
    const unreported = await live.app.inject({ method: 'GET', url, remoteAddress: '10.9.0.1', headers: { ...(await session(live)).headers, 'x-forwarded-proto': '' } });
    expect(code(unreported)).toBe('https_required');
    // The refusal is a problem with the usual headers, and HSTS is not sent over plain HTTP.
    const res = await from({ 'x-forwarded-proto': 'http' });
    expect(res.statusCode).toBe(403);
    expect(res.headers['strict-transport-security']).toBeUndefined();
  });

  it('refuses an API key in the clear too, and one sent around the proxy however it labels itself', async () => {
    const owner = await session(live);
    const k = await createKey(live, owner.headers, { label: 'clear', scopes: ['orders:read'] });
    expect(code(await signed(live, credentialOf(k), { url: '/api/v1/trading/probe', headers: { 'x-forwarded-proto': 'http' } }))).toBe('https_required');
    expect(code(await signed(live, credentialOf(k), { url: '/api/v1/trading/probe', remoteAddress: '10.9.0.7', headers: { 'x-forwarded-proto': 'https' } }))).toBe('https_required');
    expect((await signed(live, credentialOf(k), { url: '/api/v1/trading/probe' })).statusCode).toBe(200);
  });

  it('refuses a refresh token, and the sign-in that hands out tokens, in the clear', async () => {
    const owner = await session(live);
    const { refreshToken } = await live.server.services.sessions.start({ accountId: owner.account.id, chain: 'ethereum', authTimeMs: live.server.services.clock.now(), client: { ip: '203.0.113.9', userAgent: undefined, requestId: 'req_test' } });
    const refresh = (proto: string) => live.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', headers: { 'x-forwarded-proto': proto }, payload: { refreshToken } });
    // In the body, not a header, but a credential all the same (the longest-lived one): spent and
    // answered with a new pair in the clear, it would be as exposed as a token in a header.
    expect(code(await refresh('http'))).toBe('https_required');
    const login = await live.app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'x-forwarded-proto': 'http' }, payload: { message: 'x', signature: '0x00' } });
    expect(code(login)).toBe('https_required');
    // Over HTTPS the same token is still good: the refusal spent nothing.
    expect((await refresh('https')).statusCode).toBe(200);
  });

  it('answers requests without credentials over plain HTTP (a load balancer’s health check)', async () => {
    const res = await live.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '10.9.0.1', headers: { 'x-forwarded-proto': 'http' } });
    expect(res.statusCode).toBe(200);
  });
});
