import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSiweMessage } from 'viem/siwe';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../src/lib/clock.js';
import type { SecurityEvent } from '../../src/security/events/index.js';
import { MemoryState } from '../../src/state/memory.js';
import { serviceAvailable } from '../support/services.js';
import { dropSchema, emptySharedState, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { ethereumWallet, postLogin, requestChallenge, signInEthereum, signInSolana, solanaWallet } from '../support/wallet.js';

const backends = [
  { backend: 'embedded' as const, available: async () => true },
  { backend: 'scaleout' as const, available: async () => (await serviceAvailable('postgres')) && (await serviceAvailable('redis')) },
];

function failures(server: TestServer): SecurityEvent[] {
  const seen: SecurityEvent[] = [];
  server.services.events.subscribe((e) => {
    if (e.type === 'signin.failed') seen.push(e);
  });
  return seen;
}

function expectRefused(res: { statusCode: number; json(): any }, detail?: RegExp) {
  expect(res.statusCode).toBe(401);
  const body = res.json();
  expect(body.code).toBe('invalid_credentials');
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

describe.each(backends)('wallet sign-in on $backend', ({ backend, available }) => {
  let server: TestServer;
  let skip = false;
  beforeAll(async () => {
    skip = !(await available());
    if (!skip) server = await startTestServer({ backend });
  });
  afterAll(async () => {
    if (!skip) await server.close();
  });

  it('signs in an Ethereum wallet and the access token works', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInEthereum(server);
    expect(s.account.wallet).toBe(s.wallet.address.toLowerCase());
    expect(s.account.role).toBe('trader');
    expect(s.refreshToken).toMatch(/^mdr_[A-Za-z0-9_-]{43}$/);
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: s.headers });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: s.account.id, wallet: s.account.wallet });
  });

  it('signs in a Solana wallet and the access token works', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const s = await signInSolana(server);
    expect(s.account.wallet).toBe(s.wallet.address);
    expect(s.account.chain).toBe('solana');
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: s.headers });
    expect(res.json()).toMatchObject({ id: s.account.id, chain: 'solana' });
  });

  it('the same wallet signing in again reaches the same account', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const first = await signInEthereum(server);
    const again = await signInEthereum(server, first.wallet.privateKey);
    expect(again.account.id).toBe(first.account.id);
    expect(again.sessionId).not.toBe(first.sessionId);
  });

  it('refuses a replayed nonce (the same signed message twice)', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const wallet = ethereumWallet();
    const { message } = await requestChallenge(server, wallet.address, 'ethereum');
    const signature = await wallet.sign(message);
    expect((await postLogin(server, message, signature)).statusCode).toBe(200);
    expectRefused(await postLogin(server, message, signature), /nonce/i);
  });

  it('refuses a nonce issued for another address', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const victim = ethereumWallet();
    const attacker = ethereumWallet();
    const { message: victims } = await requestChallenge(server, victim.address, 'ethereum');
    const forged = victims.replace(victim.address, attacker.address);
    expectRefused(await postLogin(server, forged, await attacker.sign(forged)), /another wallet/);
    // Only the wallet's own signature spends its nonce: another's attempt leaves it to the victim.
    expect((await postLogin(server, victims, await victim.sign(victims))).statusCode).toBe(200);
    expectRefused(await postLogin(server, victims, await victim.sign(victims)), /already used/);
  });

  it('stores nothing in shared state for challenges, however many addresses ask', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const { state } = server.services;
    const before = new Set(await state.keys(''));
    const redeemed = state instanceof MemoryState ? state.remembered('signin-nonce') : 0;
    const wallet = ethereumWallet();
    const sol = solanaWallet();
    for (let i = 0; i < 200; i++) {
      const client = { remoteAddress: `10.77.${i >> 8}.${i & 255}` };
      await requestChallenge(server, wallet.address, 'ethereum', client);
      await requestChallenge(server, sol.address, 'solana', client);
    }
    // Only the per-address rate-limit windows (rl:…, one second long) were written, besides what
    // background work may write meanwhile: the security sync's and the IP-block sync's passes
    // (every few seconds; the latter renews this process's marker, ipblocks:held:…), and the
    // once-a-minute activity claims (sess:touched:…) of sessions that earlier tests used, written
    // after their answers. A loop slowed by a loaded machine meets them; a quick one does not.
    const background = ['rl:', 'security:sync:', 'sess:revoked:', 'sess:touched:', 'acct:role:', 'apikey:v:', 'replay:held', 'ipblocks:held:'];
    const added = (await state.keys('')).filter((k) => !before.has(k) && !background.some((p) => k.startsWith(p)));
    expect(added).toEqual([]);
    if (state instanceof MemoryState) expect(state.remembered('signin-nonce')).toBe(redeemed);
  });

  it('refuses a signed message reused concurrently: one login, every other copy refused', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const wallet = ethereumWallet();
    const { message } = await requestChallenge(server, wallet.address, 'ethereum');
    const signature = await wallet.sign(message);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => postLogin(server, message, signature, { remoteAddress: `10.78.0.${i + 1}` })));
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
    for (const r of results.filter((r) => r.statusCode !== 200)) expectRefused(r, /already used/);
  });

  it('refuses a message whose nonce was altered, though the wallet signed it', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const wallet = ethereumWallet();
    const { message, nonce } = await requestChallenge(server, wallet.address, 'ethereum');
    const last = nonce.at(-1) === 'z' ? 'y' : 'z';
    const altered = message.replace(`Nonce: ${nonce}`, `Nonce: ${nonce.slice(0, -1)}${last}`);
    expectRefused(await postLogin(server, altered, await wallet.sign(altered)), /nonce/i);
    // The genuine one still works.
    expect((await postLogin(server, message, await wallet.sign(message))).statusCode).toBe(200);
  });

  it('refuses a Solana nonce used in an Ethereum message', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const sol = solanaWallet();
    const eth = ethereumWallet();
    const { nonce } = await requestChallenge(server, sol.address, 'solana');
    const { message } = await requestChallenge(server, eth.address, 'ethereum');
    const swapped = message.replace(/Nonce: \w+/, `Nonce: ${nonce}`);
    expectRefused(await postLogin(server, swapped, await eth.sign(swapped)), /another wallet/);
  });

  it('refuses a signature by another wallet', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const owner = ethereumWallet();
    const other = ethereumWallet();
    const { message } = await requestChallenge(server, owner.address, 'ethereum');
    expectRefused(await postLogin(server, message, await other.sign(message)), /not made by the address/);
    const sol = solanaWallet();
    const otherSol = solanaWallet();
    const { message: solMessage } = await requestChallenge(server, sol.address, 'solana');
    expectRefused(await postLogin(server, solMessage, otherSol.sign(solMessage)), /not made by the wallet/);
  });
});

describe('sign-in message checks (embedded)', () => {
  let server: TestServer;
  let events: SecurityEvent[];
  beforeAll(async () => {
    server = await startTestServer();
    events = failures(server);
  });
  afterAll(() => server.close());

  async function ethAttempt(mutate: (message: string, nonce: string) => string, wallet = ethereumWallet()) {
    const { message, nonce } = await requestChallenge(server, wallet.address, 'ethereum');
    const changed = mutate(message, nonce);
    return postLogin(server, changed, await wallet.sign(changed));
  }

  it('refuses a message for another domain, and records signin.failed', async () => {
    const before = events.length;
    const res = await ethAttempt((m) => m.replace(`${server.config.domain} wants`, 'evil.example wants'));
    expectRefused(res, /another domain/);
    expect(events.length).toBe(before + 1);
    expect(events.at(-1)).toMatchObject({ type: 'signin.failed', reason: 'domain_mismatch', ip: '127.0.0.1' });
  });

  it('builds the domain check on the configured public URL', async () => {
    const other = await startTestServer({ env: { MOONDRAFT_PUBLIC_URL: 'https://api.moondraft.example' } });
    try {
      const wallet = ethereumWallet();
      const { message } = await requestChallenge(other, wallet.address, 'ethereum');
      expect(message.startsWith('api.moondraft.example wants you to sign in with your Ethereum account:\n')).toBe(true);
      expect(message).toContain('\nURI: https://api.moondraft.example\n');
      // The same message signed for a look-alike server is refused by the real one.
      const res = await postLogin(server, message, await wallet.sign(message));
      expectRefused(res, /another domain/);
    } finally {
      await other.close();
    }
  });

  it('refuses another URI, scheme, chain id or version', async () => {
    expectRefused(await ethAttempt((m) => m.replace(/URI: .*/, 'URI: https://evil.example')), /URI/);
    expectRefused(await ethAttempt((m) => m.replace(/^http:\/\//, 'https://')), /scheme/);
    expectRefused(await ethAttempt((m) => m.replace('Chain ID: 1', 'Chain ID: 137')), /chain id/);
    expectRefused(await ethAttempt((m) => m.replace('Version: 1', 'Version: 2')));
  });

  it('honours MOONDRAFT_SIWE_CHAIN_ID', async () => {
    const other = await startTestServer({ env: { MOONDRAFT_SIWE_CHAIN_ID: '8453' } });
    try {
      const wallet = ethereumWallet();
      const { message } = await requestChallenge(other, wallet.address, 'ethereum');
      expect(message).toContain('\nChain ID: 8453\n');
      expect((await postLogin(other, message, await wallet.sign(message))).statusCode).toBe(200);
    } finally {
      await other.close();
    }
  });

  it('refuses a message the wallet built itself with a nonce we never issued', async () => {
    const wallet = ethereumWallet();
    const message = createSiweMessage({
      address: wallet.address,
      domain: server.config.domain,
      scheme: 'http',
      uri: server.config.publicUrl,
      version: '1',
      chainId: 1,
      nonce: 'abcdef0123456789abcdef0123456789',
      issuedAt: new Date(),
    });
    expectRefused(await postLogin(server, message, await wallet.sign(message)), /nonce/i);
  });

  it('accepts a message the client built itself around our nonce', async () => {
    const wallet = ethereumWallet();
    const { nonce } = await requestChallenge(server, wallet.address, 'ethereum');
    const message = createSiweMessage({
      address: wallet.address,
      domain: server.config.domain,
      uri: server.config.publicUrl,
      version: '1',
      chainId: 1,
      nonce,
      issuedAt: new Date(),
      statement: 'My own dapp words',
      requestId: 'abc-123',
      resources: ['https://example.com/terms'],
    });
    expect((await postLogin(server, message, await wallet.sign(message))).statusCode).toBe(200);
  });

  it('refuses a Request ID outside the EIP-4361 grammar (request-id = *pchar), as for Solana', async () => {
    for (const requestId of ['two words', 'x"<>{}', 'a^b|c']) {
      const wallet = ethereumWallet();
      const { nonce } = await requestChallenge(server, wallet.address, 'ethereum');
      const message = createSiweMessage({ address: wallet.address, domain: server.config.domain, scheme: 'http', uri: server.config.publicUrl, version: '1', chainId: 1, nonce, issuedAt: new Date(), requestId });
      expectRefused(await postLogin(server, message, await wallet.sign(message)), /request id/i);
    }
  });

  it('refuses contract-wallet signatures with a message that says why', async () => {
    const wallet = ethereumWallet();
    const { message } = await requestChallenge(server, wallet.address, 'ethereum');
    const eip1271 = `0x${'ab'.repeat(96)}`;
    const erc6492 = `0x${'00'.repeat(128)}${'6492'.repeat(16)}`;
    for (const signature of [eip1271, erc6492, '0x', `0x${'11'.repeat(64)}`]) {
      const body = expectRefused(await postLogin(server, message, signature), /contract wallets/);
      expect(body.detail).toMatch(/RPC/);
    }
  });

  it('refuses a signature that is not hex, or is 65 bytes of nonsense', async () => {
    const wallet = ethereumWallet();
    const { message } = await requestChallenge(server, wallet.address, 'ethereum');
    expectRefused(await postLogin(server, message, 'not-a-signature'), /hex/);
    const { message: m2 } = await requestChallenge(server, wallet.address, 'ethereum');
    expectRefused(await postLogin(server, m2, `0x${'00'.repeat(64)}1b`));
  });

  it('refuses Solana signatures that are not base58 of 64 bytes', async () => {
    const wallet = solanaWallet();
    for (const signature of ['0OIl', '1'.repeat(10), `0x${'ab'.repeat(64)}`]) {
      const { message } = await requestChallenge(server, wallet.address, 'solana');
      expectRefused(await postLogin(server, message, signature));
    }
  });

  it('refuses Solana messages for another domain or chain', async () => {
    const wallet = solanaWallet();
    const attempt = async (mutate: (m: string) => string) => {
      const { message } = await requestChallenge(server, wallet.address, 'solana');
      const changed = mutate(message);
      return postLogin(server, changed, wallet.sign(changed));
    };
    expectRefused(await attempt((m) => m.replace(/^[^ ]+ wants/, 'evil.example wants')), /another domain/);
    expectRefused(await attempt((m) => m.replace('Chain ID: mainnet', 'Chain ID: devnet')), /chain id/);
    expect((await attempt((m) => m.replace('Chain ID: mainnet', 'Chain ID: solana:mainnet'))).statusCode).toBe(200);
  });

  it('takes an all-uppercase Ethereum address (unchecksummed, like all-lowercase) and signs in its wallet', async () => {
    const wallet = ethereumWallet();
    const upper = `0x${wallet.address.slice(2).toUpperCase()}`;
    const challenge = await requestChallenge(server, upper, 'ethereum');
    // The message carries the EIP-55 form, as EIP-4361 requires.
    expect(challenge.message).toContain(`\n${wallet.address}\n`);
    const res = await postLogin(server, challenge.message, await wallet.sign(challenge.message));
    expect(res.statusCode).toBe(200);
    expect(res.json().account.wallet.toLowerCase()).toBe(wallet.address.toLowerCase());
  });

  it('refuses a challenge for a malformed address with validation_failed', async () => {
    for (const [address, chain] of [
      ['0x1234', 'ethereum'],
      ['0x52C9A2D296EDbBAC90832cBa3dC6117fC46DE4e8', 'ethereum'], // bad EIP-55 checksum
      ['4fYNw3dojWmQ4dXtSGE9epjRGy9pFSx62YypT7avPYvA', 'ethereum'],
      ['0x52c9a2d296edbbac90832cba3dc6117fc46de4e9', 'solana'],
      ['1111111111111111111111111111111', 'solana'], // base58 but not 32 bytes
      ["' OR 1=1 --", 'ethereum'],
    ] as const) {
      const res = await server.app.inject({ method: 'POST', url: '/api/v1/auth/challenge', payload: { address, chain } });
      expect(res.statusCode, address).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
  });
});

describe('sign-in times are checked with the server clock', () => {
  let server: TestServer;
  const clock = new ManualClock(Date.UTC(2026, 5, 1, 12));
  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  it('refuses a challenge signed after it expired (nonce gone and message expired)', async () => {
    const wallet = ethereumWallet();
    const { message, expiresAt } = await requestChallenge(server, wallet.address, 'ethereum');
    expect(expiresAt).toBe(clock.now() + 5 * 60_000);
    clock.advance(5 * 60_000 + 1);
    expectRefused(await postLogin(server, message, await wallet.sign(message)), /expired/);
  });

  it('refuses a nonce past its five minutes even in a message that is itself still valid', async () => {
    const wallet = ethereumWallet();
    const { nonce } = await requestChallenge(server, wallet.address, 'ethereum');
    clock.advance(5 * 60_000);
    // Built by the client around the old nonce, freshly dated and without an expiration time.
    const message = createSiweMessage({ address: wallet.address, domain: server.config.domain, scheme: 'http', uri: server.config.publicUrl, version: '1', chainId: 1, nonce, issuedAt: new Date(clock.now()) });
    expectRefused(await postLogin(server, message, await wallet.sign(message)), /nonce has expired/);
  });

  it('accepts a challenge signed within its five minutes', async () => {
    const wallet = ethereumWallet();
    const { message } = await requestChallenge(server, wallet.address, 'ethereum');
    clock.advance(4 * 60_000);
    expect((await postLogin(server, message, await wallet.sign(message))).statusCode).toBe(200);
  });

  it('refuses a message issued in the future or long ago, and one not valid yet', async () => {
    const wallet = ethereumWallet();
    const build = async (fields: { issuedAt: Date; notBefore?: Date; expirationTime?: Date }) => {
      const { nonce } = await requestChallenge(server, wallet.address, 'ethereum');
      const message = createSiweMessage({ address: wallet.address, domain: server.config.domain, scheme: 'http', uri: server.config.publicUrl, version: '1', chainId: 1, nonce, ...fields });
      return postLogin(server, message, await wallet.sign(message));
    };
    const now = clock.now();
    expectRefused(await build({ issuedAt: new Date(now + 120_000) }), /future/);
    expectRefused(await build({ issuedAt: new Date(now - 10 * 60_000) }), /too long ago/);
    expectRefused(await build({ issuedAt: new Date(now), notBefore: new Date(now + 60_000) }), /not valid yet/);
    expectRefused(await build({ issuedAt: new Date(now - 60_000), expirationTime: new Date(now - 1) }), /expired/);
    expect((await build({ issuedAt: new Date(now + 10_000) })).statusCode).toBe(200); // within clock tolerance
  });
});

describe('bootstrap admin', () => {
  it('MOONDRAFT_BOOTSTRAP_ADMIN makes that wallet an admin at its first sign-in', async () => {
    const wallet = ethereumWallet();
    const server = await startTestServer({ env: { MOONDRAFT_BOOTSTRAP_ADMIN: wallet.address } });
    try {
      const admin = await signInEthereum(server, wallet.privateKey);
      expect(admin.account.role).toBe('admin');
      const other = await signInEthereum(server);
      expect(other.account.role).toBe('trader');
    } finally {
      await server.close();
    }
  });
});

describe.runIf((await serviceAvailable('postgres')) && (await serviceAvailable('redis')))('sign-in nonces across two scale-out servers', () => {
  const isolation = newIsolation();
  // One data dir: both servers read the same (sandbox) master key, as a deployment's processes share MOONDRAFT_MASTER_KEY.
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-nonces-'));
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    a = await startTestServer({ backend: 'scaleout', isolation, dataDir });
    b = await startTestServer({ backend: 'scaleout', isolation, dataDir });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await dropSchema(isolation.pgSchema);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a challenge issued by one server is redeemed on the other, once', async () => {
    const wallet = ethereumWallet();
    const { message } = await requestChallenge(a, wallet.address, 'ethereum');
    const signature = await wallet.sign(message);
    expect((await postLogin(b, message, signature)).statusCode).toBe(200);
    expectRefused(await postLogin(a, message, signature), /already used/);
    expectRefused(await postLogin(b, message, signature), /already used/);
  });

  it('copies of one signed message racing across both servers: one login', async () => {
    const sol = solanaWallet();
    const { message } = await requestChallenge(b, sol.address, 'solana');
    const signature = sol.sign(message);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => postLogin(i % 2 ? a : b, message, signature, { remoteAddress: `10.79.0.${i + 1}` })));
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
  });

  it('a message redeemed before Redis restarted empty is refused by both servers after', async () => {
    const wallet = ethereumWallet();
    const { message } = await requestChallenge(a, wallet.address, 'ethereum');
    const signature = await wallet.sign(message);
    expect((await postLogin(a, message, signature)).statusCode).toBe(200);
    await emptySharedState(isolation);
    await new Promise((r) => setTimeout(r, 5));
    expectRefused(await postLogin(b, message, signature), /before this server’s memory/);
    expectRefused(await postLogin(a, message, signature), /nonce/);
    // A challenge issued now works.
    const fresh = await requestChallenge(b, wallet.address, 'ethereum');
    expect((await postLogin(a, fresh.message, await wallet.sign(fresh.message))).statusCode).toBe(200);
  });
});

describe('sign-in nonces across a restart of the embedded server', () => {
  it('a message redeemed before the restart is refused after it (the in-process memory is new)', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-nonces-'));
    const clock = new ManualClock(Date.UTC(2026, 5, 1, 12));
    try {
      const first = await startTestServer({ dataDir, sqliteFile: true, clock });
      const wallet = ethereumWallet();
      const { message } = await requestChallenge(first, wallet.address, 'ethereum');
      const signature = await wallet.sign(message);
      const unused = await requestChallenge(first, wallet.address, 'ethereum');
      expect((await postLogin(first, message, signature)).statusCode).toBe(200);
      await first.close();
      clock.advance(1_000);
      const second = await startTestServer({ dataDir, sqliteFile: true, clock });
      try {
        expectRefused(await postLogin(second, message, signature), /before this server’s memory/);
        expectRefused(await postLogin(second, unused.message, await wallet.sign(unused.message)), /before this server’s memory/);
        const fresh = await requestChallenge(second, wallet.address, 'ethereum');
        expect((await postLogin(second, fresh.message, await wallet.sign(fresh.message))).statusCode).toBe(200);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
