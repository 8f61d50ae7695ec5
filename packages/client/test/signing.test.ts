import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MoondraftClient,
  canonicalMessage,
  ed25519PublicKey,
  ed25519Signer,
  generateEd25519KeyPair,
  hmacSigner,
  signRequest,
  signedParts,
} from '../src/index.js';
import { ed25519Valid, expectedHmac, hmacValid, sendJson, startWireServer, type WireServer } from './support/wire-server.js';

// The shared vectors live beside the repository: <repo>/../shared/vectors/request-signing.json
// (MOONDRAFT_SHARED_DIR points elsewhere, e.g. from a git worktree whose parent holds no shared/).
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const sharedDir = process.env.MOONDRAFT_SHARED_DIR ?? path.resolve(repoRoot, '../shared');
// Without that directory (a git worktree), the repository's own copy of the same vectors is used.
const sharedVectors = path.join(sharedDir, 'vectors/request-signing.json');
const vectorsFile = existsSync(sharedVectors) ? sharedVectors : path.join(repoRoot, 'test/keys/request-signing.vectors.json');
interface VectorCase {
  name: string;
  timestamp: string;
  method: string;
  path: string;
  body: string;
  signature: string;
}
const vectors: { secret: string; cases: VectorCase[] } | undefined = existsSync(vectorsFile) ? JSON.parse(readFileSync(vectorsFile, 'utf8')) : undefined;

const SECRET = 'mds_unit_test_secret_ß_🌙';
const fixedClock = (t: number) => ({ now: () => t });

describe.skipIf(!vectors)('shared request-signing vectors (../shared/vectors/request-signing.json)', () => {
  it('has cases to check', () => {
    expect(vectors!.cases.length).toBeGreaterThan(0);
  });

  it.each(vectors?.cases ?? [])('the SDK signer reproduces "$name"', (c) => {
    expect(signRequest(hmacSigner(vectors!.secret), c)).toBe(c.signature);
  });

  describe.each(['fetch', 'node'] as const)('sent on the wire through the client (%s transport)', (transport) => {
    let server: WireServer;
    beforeAll(async () => {
      server = await startWireServer((_req, res) => sendJson(res, 200, { ok: true }));
    });
    afterAll(() => server.close());

    it.each(vectors?.cases ?? [])('"$name" leaves with the vector signature, target and body bytes', async (c) => {
      const client = new MoondraftClient({
        baseUrl: server.url,
        env: false,
        apiKey: 'md_test_vectors',
        apiSecret: vectors!.secret,
        clock: fixedClock(Number(c.timestamp)),
        autoSyncTime: false,
        transport,
      });
      const [pathname, search] = c.path.split('?');
      const query = search ? Object.fromEntries(new URLSearchParams(search)) : undefined;
      await client.request(c.method as 'GET', pathname!, { query, ...(c.body ? { body: c.body } : {}) });
      const seen = server.requests.at(-1)!;
      expect(seen.target).toBe(c.path);
      expect(seen.body.toString('utf8')).toBe(c.body);
      expect(seen.headers['x-api-timestamp']).toBe(c.timestamp);
      expect(seen.headers['x-api-signature']).toBe(c.signature);
      expect(seen.headers['x-api-key']).toBe('md_test_vectors');
      client.close();
    });
  });
});

if (!vectors) console.warn(`\n  ⚠ SKIPPED: shared request-signing vectors: ${vectorsFile} is absent\n`);

describe('canonical message and signers', () => {
  it('appends the body as raw bytes after timestamp + METHOD + path', () => {
    const body = new Uint8Array([0x7b, 0xc3, 0xa9, 0x7d]); // {é} in UTF-8
    const message = canonicalMessage({ timestamp: '1', method: 'post', path: '/x?a=1', body });
    expect(Buffer.from(message).toString('latin1')).toBe('1POST/x?a=1{\u00c3\u00a9}');
  });

  it('signs a string body as its UTF-8 bytes, the same as the bytes themselves', () => {
    const signer = hmacSigner(SECRET);
    const parts = { timestamp: '1764345600000', method: 'POST', path: '/api/v1/tokens', body: '{"name":"Lune Rêve 🌙"}' };
    expect(signRequest(signer, parts)).toBe(signRequest(signer, { ...parts, body: new TextEncoder().encode(parts.body) }));
  });

  it('describes what it signed without the secret', () => {
    const parts = signedParts({ timestamp: '5', method: 'get', path: '/p', body: '' });
    expect(parts).toEqual({
      timestamp: '5',
      method: 'GET',
      path: '/p',
      bodyLength: 0,
      bodySha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    });
  });

  it('makes ed25519 signatures that node:crypto verifies, with a derived public key that matches', () => {
    const pair = generateEd25519KeyPair();
    expect(ed25519PublicKey(pair.privateKey)).toBe(pair.publicKey);
    const target = '/api/v1/trading/orders?market=MOON-USDC';
    const body = Buffer.from('{"a":"1"}');
    const signature = signRequest(ed25519Signer(pair.privateKey), { timestamp: '42', method: 'POST', path: target, body });
    expect(signature).toMatch(/^[0-9a-f]{128}$/);
    const request = { method: 'POST', target, body, headers: { 'x-api-timestamp': '42', 'x-api-signature': signature } };
    expect(ed25519Valid(pair.publicKey, request)).toBe(true);
    expect(ed25519Valid(pair.publicKey, { ...request, target: `${target}&x=1` })).toBe(false);
  });

  it('refuses malformed keys', () => {
    expect(() => hmacSigner('')).toThrow(TypeError);
    expect(() => ed25519Signer('abcd')).toThrow(TypeError);
    expect(() => ed25519Signer(new Uint8Array(31))).toThrow(TypeError);
  });
});

describe.each(['fetch', 'node'] as const)('what the client sends (%s transport)', (transport) => {
  let server: WireServer;
  beforeAll(async () => {
    server = await startWireServer((req, res) => sendJson(res, 200, { id: 'x', markets: [], tickers: [], balances: [] }, { serverTime: Date.now() }));
  });
  afterAll(() => server.close());

  const client = (extra: Partial<ConstructorParameters<typeof MoondraftClient>[0]> = {}) =>
    new MoondraftClient({ baseUrl: server.url, env: false, apiKey: 'md_test_k', apiSecret: SECRET, transport, ...extra });

  it('signs every request so that a server recomputing over the raw target and body agrees', async () => {
    const c = client();
    server.requests.length = 0;
    await c.market.markets();
    await c.trading.orders({ market: 'MOON-USDC', status: 'open', limit: 50 });
    await c.trading.order('ord 1/2'); // encoded, never able to change the route
    await c.request('GET', '/api/v1/market/trades/MOON-USDC', { query: { q: "it's ü+ &=", n: 1, flag: true, none: undefined } });
    await c.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'limit', price: '0.0125', quantity: '1000' });
    await c.tokens.create({ name: 'Lune Rêve 🌙', symbol: 'LUNE', decimals: 9, supply: '1000000000' });
    await c.trading.cancelOrder('ord_1');
    const signed = server.requests.filter((r) => r.target !== '/api/v1/time');
    expect(signed).toHaveLength(7);
    for (const r of signed) {
      expect(r.headers['x-api-key']).toBe('md_test_k');
      expect(r.headers['x-api-signature'], `${r.method} ${r.target}`).toBe(expectedHmac(SECRET, r));
    }
    expect(signed.map((r) => r.target)).toEqual([
      '/api/v1/market/markets',
      '/api/v1/trading/orders?market=MOON-USDC&status=open&limit=50',
      '/api/v1/trading/orders/ord%201%2F2',
      // The URL parser percent-encodes the apostrophe: the client signs the target after that, as sent.
      '/api/v1/market/trades/MOON-USDC?q=it%27s%20%C3%BC%2B%20%26%3D&n=1&flag=true',
      '/api/v1/trading/orders',
      '/api/v1/tokens',
      '/api/v1/trading/orders/ord_1',
    ]);
    c.close();
  });

  it('sends Content-Type only with a body, and the body bytes as serialised once', async () => {
    const c = client();
    server.requests.length = 0;
    await c.account.balances();
    await c.trading.cancelOrder('ord_1');
    await c.withdrawals.cancel('wdr_1');
    await c.tokens.create({ name: 'Lune Rêve 🌙', symbol: 'LUNE', decimals: 9, supply: '1000000000' });
    const [get, del, bodilessPost, post] = server.requests.filter((r) => r.target !== '/api/v1/time');
    for (const r of [get!, del!, bodilessPost!]) {
      expect(r.headers['content-type'], `${r.method} ${r.target}`).toBeUndefined();
      expect(r.body.length).toBe(0);
      expect(hmacValid(SECRET, r)).toBe(true);
    }
    expect(post!.headers['content-type']).toBe('application/json');
    expect(post!.body.toString('utf8')).toBe('{"name":"Lune Rêve 🌙","symbol":"LUNE","decimals":9,"supply":"1000000000"}');
    expect(hmacValid(SECRET, post!)).toBe(true);
    c.close();
  });

  it('signs with an ed25519 key the server verifies by its public key', async () => {
    const pair = generateEd25519KeyPair();
    const c = client({ apiSecret: undefined, privateKey: pair.privateKey });
    expect(c.credentialKind).toBe('ed25519');
    server.requests.length = 0;
    await c.trading.placeOrder({ market: 'MOON-USDC', side: 'sell', type: 'market', quantity: '5' });
    const order = server.requests.find((r) => r.target === '/api/v1/trading/orders')!;
    expect(ed25519Valid(pair.publicKey, order)).toBe(true);
    c.close();
  });

  it('sends the receive window when configured', async () => {
    const c = client({ recvWindowMs: 15_000 });
    server.requests.length = 0;
    await c.account.get();
    expect(server.requests.at(-1)!.headers['x-api-recv-window']).toBe('15000');
    c.close();
  });

  it('reads the key and secret from the environment by default, and sends only the key without a secret', async () => {
    const fromEnv = new MoondraftClient({ baseUrl: server.url, env: { MOONDRAFT_API_KEY: 'md_test_env', MOONDRAFT_API_SECRET: SECRET }, transport });
    expect(fromEnv.credentialKind).toBe('hmac');
    server.requests.length = 0;
    await fromEnv.account.get();
    const signedReq = server.requests.at(-1)!;
    expect(signedReq.headers['x-api-key']).toBe('md_test_env');
    expect(hmacValid(SECRET, signedReq)).toBe(true);

    const keyOnly = new MoondraftClient({ baseUrl: server.url, env: { MOONDRAFT_API_KEY: 'md_test_env' }, transport });
    expect(keyOnly.credentialKind).toBe('unsigned');
    await keyOnly.market.tickers();
    const unsigned = server.requests.at(-1)!;
    expect(unsigned.headers['x-api-key']).toBe('md_test_env');
    expect(unsigned.headers['x-api-signature']).toBeUndefined();
    expect(unsigned.headers['x-api-timestamp']).toBeUndefined();

    // A key given in code never borrows the environment's secret.
    const inCode = new MoondraftClient({ baseUrl: server.url, apiKey: 'md_test_code', env: { MOONDRAFT_API_SECRET: SECRET } });
    expect(inCode.credentialKind).toBe('unsigned');
    fromEnv.close();
    keyOnly.close();
  });
});

describe('configuration refusals', () => {
  it('refuses plain http to a non-loopback host, unless allowed', () => {
    expect(() => new MoondraftClient({ baseUrl: 'http://api.example.com', env: false })).toThrow(/in clear/);
    expect(new MoondraftClient({ baseUrl: 'http://api.example.com', env: false, allowInsecureHttp: true }).baseUrl.host).toBe('api.example.com');
    expect(new MoondraftClient({ baseUrl: 'http://[::1]:8080', env: false }).baseUrl.hostname).toBe('[::1]');
    expect(new MoondraftClient({ baseUrl: 'http://localhost:8080', env: false }).baseUrl.hostname).toBe('localhost');
  });

  it('refuses ambiguous or malformed credentials and options', () => {
    expect(() => new MoondraftClient({ env: false, apiKey: 'k', apiSecret: 's', privateKey: '00'.repeat(32) })).toThrow(/not both/);
    expect(() => new MoondraftClient({ env: false, apiSecret: 's' })).toThrow(/without its apiKey/);
    expect(() => new MoondraftClient({ env: false, apiKey: 'k\nX-Evil: 1', apiSecret: 's' })).toThrow(/header/);
    expect(() => new MoondraftClient({ env: false, recvWindowMs: 60_001 })).toThrow(/recvWindowMs/);
    expect(() => new MoondraftClient({ env: false, baseUrl: 'ftp://x' })).toThrow(/http/);
  });

  it('refuses amounts that are not decimal strings before sending anything', () => {
    const c = new MoondraftClient({ env: false });
    // @ts-expect-error: a JSON number for an amount is what the types forbid
    expect(() => c.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: 10 })).toThrow(/decimal string/);
    expect(() => c.sandbox.faucet({ asset: 'USDC', amount: '1e6' })).toThrow(/decimal string/);
    expect(() => c.trading.order('..')).toThrow(/path parameter/);
  });
});
