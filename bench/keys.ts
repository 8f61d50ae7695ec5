/**
 * API keys (issue 4): signature verifications per second (HMAC-SHA256 and ed25519), and signed
 * API-key requests per second through the whole security chain next to the same route with no
 * security at all, both measured in this run on one server (app.inject, in process).
 */
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadConfig } from '../src/config/index.js';
import { buildServer } from '../src/http/server.js';
import { ManualClock } from '../src/lib/clock.js';
import { canonicalMessage, hmacSignatureHex, verifyEd25519, verifyHmac, type CanonicalParts } from '../src/security/signing/index.js';
import { REPLAY_TTL_MS } from '../src/security/replay/index.js';
import { messageDigest } from '../src/security/signing/verify.js';
import { createServices } from '../src/services.js';
import { MemoryState } from '../src/state/memory.js';
import type { BenchRow } from './types.js';

function perSecond(count: number, run: () => void): number {
  const start = process.hrtime.bigint();
  run();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return Math.round(count / seconds);
}

async function perSecondAsync(count: number, concurrency: number, one: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < count) await one(next++);
  };
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return Math.round(count / seconds);
}

function verificationRows(): BenchRow[] {
  const parts: CanonicalParts = {
    timestamp: '1764345600000',
    method: 'POST',
    pathWithQuery: '/api/v1/trading/orders',
    body: '{"market":"MOON-USDC","side":"buy","type":"limit","price":"0.0125","quantity":"1000"}',
  };
  const secret = 'mds_8f3kQ2v9ZyX1pL0aWc7nRt5uHe4bJd6gMs';
  const hmacSig = hmacSignatureHex(secret, parts);
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const edSig = nodeSign(null, canonicalMessage(parts), privateKey).toString('hex');

  const hmacN = 50_000;
  const edN = 10_000;
  for (let i = 0; i < 1000; i++) verifyHmac(secret, parts, hmacSig) && verifyEd25519(publicKey, parts, edSig); // warm-up
  const hmac = perSecond(hmacN, () => {
    for (let i = 0; i < hmacN; i++) if (!verifyHmac(secret, parts, hmacSig)) throw new Error('hmac verification failed');
  });
  const ed = perSecond(edN, () => {
    for (let i = 0; i < edN; i++) if (!verifyEd25519(publicKey, parts, edSig)) throw new Error('ed25519 verification failed');
  });
  return [
    { name: 'HMAC-SHA256 request-signature verifications', value: hmac, unit: 'verifications/s' },
    { name: 'ed25519 request-signature verifications', value: ed, unit: 'verifications/s', baseline: { name: 'HMAC-SHA256 verifications', value: hmac } },
  ];
}

async function chainRows(): Promise<BenchRow[]> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-bench-keys-'));
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const services = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }), { clock, sqliteFile: ':memory:', processMetrics: false });
  try {
    const app = await buildServer(services);
    const handler = async () => ({ ok: true });
    app.get('/api/v1/bench/secured', { config: { permission: 'orders:read' }, schema: { hide: true } }, handler);
    app.get('/api/v1/bench/open', { config: { permission: 'public' }, schema: { hide: true } }, handler);
    await app.ready();

    const account = await services.accounts.findOrCreate(`0x${'ab'.repeat(20)}`);
    if (!account.ok) throw new Error(account.detail);
    const created = await services.apiKeys.create({ accountId: account.value.id, role: 'trader' }, { label: 'bench', scopes: ['orders:read'] });
    if (!created.ok) throw new Error(created.detail);
    const { apiKey, apiSecret } = created.value;

    const n = 2000;
    const rounds = 3;
    const concurrency = 16;
    const timestamp = String(clock.now());
    // Signed ahead of time so that only the server's work is measured; each request is distinct.
    const signedRequests = Array.from({ length: n * (rounds + 1) }, (_, i) => {
      const url = `/api/v1/bench/secured?n=${i}`;
      return {
        url,
        headers: { 'x-api-key': apiKey, 'x-api-timestamp': timestamp, 'x-api-signature': hmacSignatureHex(apiSecret!, { timestamp, method: 'GET', pathWithQuery: url, body: '' }) },
      };
    });
    const secured = async (i: number) => {
      const r = await app.inject({ method: 'GET', ...signedRequests[i]! });
      if (r.statusCode !== 200) throw new Error(`secured request refused: ${r.statusCode} ${r.body}`);
    };
    const open = async (i: number) => {
      const r = await app.inject({ method: 'GET', url: `/api/v1/bench/open?n=${i}` });
      if (r.statusCode !== 200) throw new Error(`open request failed: ${r.statusCode}`);
    };
    // Warm-up both paths (JIT, caches), then alternate rounds on the same server and keep each
    // path's best round, so a burst of load from elsewhere on the machine hits neither unfairly.
    await perSecondAsync(500, concurrency, (i) => secured(rounds * n + i));
    await perSecondAsync(500, concurrency, open);
    let openRate = 0;
    let securedRate = 0;
    for (let round = 0; round < rounds; round++) {
      openRate = Math.max(openRate, await perSecondAsync(n, concurrency, open));
      securedRate = Math.max(securedRate, await perSecondAsync(n, concurrency, (i) => secured(round * n + i)));
    }
    await app.close();
    return [
      {
        name: 'signed API-key requests through the whole security chain (key → environment → network → timestamp → signature → replay → authorize)',
        value: securedRate,
        unit: 'requests/s',
        baseline: { name: 'the same route with no security (public)', value: openRate },
      },
    ];
  } finally {
    await services.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * The in-process replay memory, which holds every signed request of the last minute (REPLAY_TTL_MS),
 * in its steady state: requests arrive at a rate that fills the memory with `held` of them, and the
 * figures are taken once as many again have arrived (so ids expire and leave as fast as new ones
 * come). Heap per id held and time per request with `firstSeen` (SHA-256 of the id, in
 * generations dropped whole once all of their ids have expired, so it holds one to two TTLs of
 * ids: per live request, up to twice the figure), beside the generic `setIfAbsent` entry it replaced (full key, value
 * and expiry object), the same ids built the same way in the same run. A test clock sets the pace.
 */
async function replayMemoryRows(): Promise<BenchRow[]> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const held = 150_000;
  const stepMs = REPLAY_TTL_MS / held;
  const messages = Array.from({ length: 2 * held }, (_, i) => new TextEncoder().encode(`${1764345600000 + i}GET/api/v1/account`));
  const signers = Array.from({ length: 64 }, (_, i) => `key_01JBENCH${String(i).padStart(16, '0')}`);
  const measure = async (remember: (state: MemoryState, signer: string, digest: string) => Promise<boolean>, count: (state: MemoryState) => number) => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const state = new MemoryState(clock);
    const one = async (i: number) => {
      if (!(await remember(state, signers[i % signers.length]!, messageDigest(messages[i]!)))) throw new Error('a new request was taken for a replay');
      clock.advance(stepMs);
    };
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < held; i++) await one(i);
    const start = process.hrtime.bigint();
    for (let i = held; i < 2 * held; i++) await one(i);
    const ns = Number(process.hrtime.bigint() - start) / held;
    gc();
    const bytes = (process.memoryUsage().heapUsed - before) / count(state);
    await state.close(); // after the measure: the state (and what it holds) stays alive until here
    return { bytes: Math.round(bytes), ns: Math.round(ns) };
  };
  // The generic entries are dropped by a sweep every 10 s of real time, which a short run never
  // reaches: all of them are still held, and the heap is divided by that count.
  const generic = (state: MemoryState, signer: string, digest: string) => state.setIfAbsent(`replay:${signer}:${digest}`, '1', REPLAY_TTL_MS);
  const once = (state: MemoryState, signer: string, digest: string) => state.firstSeen('replay', `${signer}:${digest}`, REPLAY_TTL_MS);
  await measure(generic, () => 2 * held); // warm-up
  await measure(once, (s) => s.remembered('replay'));
  const g = await measure(generic, () => 2 * held);
  const o = await measure(once, (s) => s.remembered('replay'));
  return [
    { name: `replay memory (in-process, steady state, ${held} requests per TTL): heap per signed request held (1 to 2 TTLs of them)`, value: o.bytes, unit: 'bytes', better: 'lower', baseline: { name: 'a setIfAbsent entry with the full key', value: g.bytes } },
    { name: 'replay memory (in-process, steady state): digest and check per signed request', value: o.ns, unit: 'ns', better: 'lower', baseline: { name: 'a setIfAbsent entry with the full key', value: g.ns } },
  ];
}

export async function run(): Promise<BenchRow[]> {
  return [...verificationRows(), ...(await chainRows()), ...(await replayMemoryRows())];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const row of await run()) console.log(JSON.stringify(row));
}
