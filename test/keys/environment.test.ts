import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { code, createKey, credentialOf, session, signed, startKeysServer, type CreatedKey, type KeysTestServer } from './support.js';

/**
 * A sandbox server creates a key in a SQLite file; a live server is then started on that same
 * database (someone promoted the sandbox database): the sandbox key is refused there.
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
    // From an untrusted peer, X-Forwarded-For is ignored.
    expect(code(await signed(live, cred, { url, remoteAddress: '10.9.0.2', headers: { 'x-forwarded-for': '203.0.113.9' } }))).toBe('ip_not_allowed');
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
