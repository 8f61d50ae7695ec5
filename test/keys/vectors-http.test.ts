/**
 * The shared request-signing vectors (API.md: "Test vectors: vectors/request-signing.json") through
 * the whole server, not only the signing functions: each case is sent as its method, request target
 * and body bytes, signed with the vector's signature under a key holding the vector's secret, at the
 * vector's time. The HTTP pipeline (raw request target, raw body bytes, the key checks) must accept
 * the signature: the same request sent again is then a replay, and the signature with one hex digit
 * changed is `invalid_signature`.
 *
 * Every file in <repo>/../shared/vectors is run (MOONDRAFT_SHARED_DIR points elsewhere); without that
 * directory, the repository's copy (test/keys/request-signing.vectors.json), which must then be the
 * same as the shared file when both exist.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

interface VectorCase {
  name: string;
  timestamp: string;
  method: string;
  path: string;
  body: string;
  signature: string;
}
interface VectorFile {
  secret: string;
  cases: VectorCase[];
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sharedDir = path.join(process.env.MOONDRAFT_SHARED_DIR ?? path.resolve(repoRoot, '../shared'), 'vectors');
const copy = path.join(repoRoot, 'test/keys/request-signing.vectors.json');
const files = existsSync(sharedDir)
  ? readdirSync(sharedDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => path.join(sharedDir, f))
  : [copy];

it('the repository copy of the request-signing vectors is the shared file', () => {
  const shared = path.join(sharedDir, 'request-signing.json');
  if (!existsSync(shared)) return;
  expect(JSON.parse(readFileSync(copy, 'utf8'))).toEqual(JSON.parse(readFileSync(shared, 'utf8')));
});

/** The auth refusals: anything else means the key checks (signature and replay included) passed. */
const AUTH_REFUSALS = ['invalid_api_key', 'wrong_environment', 'invalid_signature', 'signature_required', 'timestamp_out_of_window', 'replayed_request', 'ip_not_allowed'];

describe.each(files.map((f) => [path.basename(f), f] as const))('%s through the HTTP server', (_name, file) => {
  const vectors = JSON.parse(readFileSync(file, 'utf8')) as VectorFile;
  const first = Math.min(...vectors.cases.map((c) => Number(c.timestamp)));
  // The server (and its in-process replay memory) starts before the first vector was signed.
  const clock = new ManualClock(first - 60_000);
  let server: TestServer;
  let apiKey: string;

  beforeAll(async () => {
    server = await startTestServer({ clock });
    const owner = await sessionFor(server);
    await server.services.partnerLimits.set(owner.account.id, { market: 10_000, trading: 10_000, account: 10_000, tokens: 10_000 }, 'test');
    const created = await server.app.inject({
      method: 'POST',
      url: '/api/v1/keys',
      headers: owner.headers,
      payload: { label: 'vectors', scopes: ['market:read', 'account:read', 'orders:read', 'orders:write', 'positions:write', 'tokens:write', 'withdrawals:write'], ipWhitelist: ['127.0.0.1'] },
    });
    expect(created.statusCode).toBe(201);
    const key = created.json() as { id: string; apiKey: string };
    apiKey = key.apiKey;
    // The key holds the vector's secret, stored as the server stores every secret (encrypted under
    // the keyring, bound to the key id); the key has not been used yet, so nothing cached the old one.
    await server.services.store.db.updateTable('api_keys').set({ secret_enc: server.services.keyring.encrypt(vectors.secret, key.id) }).where('id', '=', key.id).execute();
  });
  afterAll(() => server?.close());

  const send = (c: VectorCase, signature: string) =>
    server.app.inject({
      method: c.method as 'GET',
      url: c.path,
      headers: { 'x-api-key': apiKey, 'x-api-timestamp': c.timestamp, 'x-api-signature': signature, ...(c.body === '' ? {} : { 'content-type': 'application/json' }) },
      ...(c.body === '' ? {} : { payload: Buffer.from(c.body, 'utf8') }),
    });
  const codeOf = (res: { statusCode: number; json(): unknown }) => (res.statusCode >= 400 ? (res.json() as { code: string }).code : undefined);

  it.each(vectors.cases.map((c) => [c.name, c] as const))('%s: accepted once, refused when replayed or altered', async (_n, c) => {
    clock.set(Number(c.timestamp));
    // One hex digit changed: the same request is refused as a bad signature, naming what was signed.
    const flipped = `${c.signature.slice(0, -1)}${c.signature.endsWith('0') ? '1' : '0'}`;
    const altered = await send(c, flipped);
    expect(codeOf(altered)).toBe('invalid_signature');
    expect((altered.json() as { signed: unknown }).signed).toMatchObject({ timestamp: c.timestamp, method: c.method, path: c.path, bodyLength: Buffer.byteLength(c.body, 'utf8') });

    const accepted = await send(c, c.signature);
    expect(AUTH_REFUSALS, `${accepted.statusCode} ${accepted.body}`).not.toContain(codeOf(accepted));
    expect(accepted.statusCode).not.toBe(401);

    const replayed = await send(c, c.signature);
    expect(codeOf(replayed)).toBe('replayed_request');
  });
});
