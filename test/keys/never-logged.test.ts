import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { hashApiKey } from '../../src/security/keys/format.js';
import { sessionFor } from '../support/auth.js';
import { createKey, credentialOf, session, signedInject, startKeysServer, type KeysTestServer } from './support.js';

/**
 * A full key scenario against a server with a SQLite file, then every log line and every byte of
 * the database files are searched for the secrets that passed through: none may appear.
 */
const clock = new ManualClock(Date.UTC(2026, 6, 1));
let ks: KeysTestServer;
const secrets = new Map<string, string>(); // value → what it is
const hashes: string[] = [];

beforeAll(async () => {
  ks = await startKeysServer({ clock, sqliteFile: true });
});
afterAll(() => ks.close());

async function send(opts: ReturnType<typeof signedInject>) {
  const h = opts.headers as Record<string, string>;
  if (h['x-api-signature']) secrets.set(h['x-api-signature'], 'X-API-Signature');
  return ks.app.inject(opts);
}

describe('never logged, never stored in plaintext', () => {
  it('after a full scenario, no secret, signature, key or Authorization value is in the logs or the database', async () => {
    const owner = await session(ks);
    const admin = await sessionFor(ks.server, { role: 'admin' });
    secrets.set(owner.headers.authorization, 'Authorization');
    secrets.set(owner.accessToken, 'access token');
    secrets.set(admin.headers.authorization, 'Authorization (admin)');

    const hmac = await createKey(ks, owner.headers, { label: 'bot', scopes: ['market:read', 'orders:read', 'orders:write'], ipWhitelist: ['127.0.0.1'] });
    secrets.set(hmac.apiKey, 'apiKey');
    secrets.set(hmac.apiSecret!, 'apiSecret');
    hashes.push(hashApiKey(hmac.apiKey));
    const edPair = ed25519.keygen();
    const ed = await createKey(ks, owner.headers, { label: 'ed', type: 'ed25519', publicKey: Buffer.from(edPair.publicKey).toString('hex'), scopes: ['orders:read'] });
    secrets.set(ed.apiKey, 'apiKey (ed25519)');
    secrets.set(Buffer.from(edPair.secretKey).toString('hex'), 'ed25519 private key');

    const cred = credentialOf(hmac);
    const good = signedInject(ks, cred, { method: 'POST', url: '/api/v1/trading/probe', body: '{"note":"buy"}' });
    expect((await send(good)).statusCode).toBe(200);
    expect((await send(good)).statusCode).toBe(401); // replay
    expect((await send(signedInject(ks, cred, { url: '/api/v1/trading/probe', sign: { url: '/nope' } }))).statusCode).toBe(401);
    expect((await send(signedInject(ks, cred, { url: '/api/v1/market/probe', unsigned: true }))).statusCode).toBe(200);
    expect((await send(signedInject(ks, cred, { url: '/api/v1/account/withdrawals/probe', method: 'POST', body: '{}' }))).statusCode).toBe(403);
    expect((await send(signedInject(ks, cred, { url: '/api/v1/trading/probe', remoteAddress: '198.51.100.1' }))).statusCode).toBe(403);
    expect((await send(signedInject(ks, { apiKey: ed.apiKey, edSecretKey: edPair.secretKey }, { url: '/api/v1/trading/probe' }))).statusCode).toBe(200);
    // Credentials sent to the wrong places and in the wrong shapes.
    expect((await ks.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: `Bearer ${hmac.apiSecret}` } })).statusCode).toBe(401);
    expect((await ks.app.inject({ method: 'GET', url: '/api/v1/account', headers: { 'x-api-key': hmac.apiSecret! } })).statusCode).toBe(401);
    expect((await ks.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: hmac.apiSecret, scopes: ['nope'] } })).statusCode).toBe(400);

    const regen = await ks.app.inject({ method: 'POST', url: `/api/v1/keys/${hmac.id}/regenerate`, headers: owner.headers, payload: { gracePeriodSeconds: 600 } });
    const newSecret = regen.json().apiSecret as string;
    secrets.set(newSecret, 'regenerated apiSecret');
    expect((await send(signedInject(ks, { apiKey: hmac.apiKey, secret: newSecret }, { url: '/api/v1/trading/probe' }))).statusCode).toBe(200);
    expect((await send(signedInject(ks, cred, { url: '/api/v1/trading/probe' }))).statusCode).toBe(200); // grace period
    await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${hmac.id}`, headers: owner.headers, payload: { scopes: ['orders:read'] } });
    await ks.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${ed.id}/suspend`, headers: admin.headers, payload: { reason: 'test' } });
    await ks.app.inject({ method: 'GET', url: '/api/v1/security/checklist', headers: owner.headers });
    await ks.app.inject({ method: 'GET', url: '/api/v1/keys', headers: owner.headers });
    await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${hmac.id}`, headers: owner.headers });
    expect((await send(signedInject(ks, { apiKey: hmac.apiKey, secret: newSecret }, { url: '/api/v1/trading/probe' }))).statusCode).toBe(401);

    // A WAL checkpoint moves every page into the main file too; both are searched.
    await sql`PRAGMA wal_checkpoint(FULL)`.execute(ks.server.services.store.db);
    const logs = ks.server.logText();
    expect(ks.server.logs.filter((l) => l.msg === 'request').length).toBeGreaterThan(15);
    const dbFiles = ['moondraft.sqlite', 'moondraft.sqlite-wal', 'moondraft.sqlite-shm'].map((f) => path.join(ks.server.dataDir, f)).filter(existsSync);
    const db = Buffer.concat(dbFiles.map((f) => readFileSync(f)));
    // The search looks in the right place: the key's hash is stored there.
    for (const h of hashes) expect(db.includes(Buffer.from(h))).toBe(true);

    expect(secrets.size).toBeGreaterThan(15);
    for (const [value, what] of secrets) {
      expect(logs.includes(value), `${what} in the logs`).toBe(false);
      expect(db.includes(Buffer.from(value)), `${what} in the database`).toBe(false);
    }
  });
});
