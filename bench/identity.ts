import { verify as cryptoVerify, createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { systemClock } from '../src/lib/clock.js';
import { AccessTokens } from '../src/security/identity/access-tokens.js';
import { ensureKeysetFile, SigningKeys } from '../src/security/identity/signing-keys.js';
import type { BenchRow } from './types.js';

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 1500);
const DISTINCT_TOKENS = 1000;

/** Operations per second of `op`, run back to back on this one thread (one core) after a warm-up. */
async function opsPerSecond(op: (i: number) => unknown | Promise<unknown>): Promise<number> {
  const warmUntil = performance.now() + Math.min(300, DURATION_MS / 4);
  for (let i = 0; performance.now() < warmUntil; i++) await op(i);
  let n = 0;
  const start = performance.now();
  const end = start + DURATION_MS;
  while (performance.now() < end) {
    // batches keep the clock reads out of the measurement
    for (let j = 0; j < 50; j++) await op(n++);
  }
  return Math.round((n * 1000) / (performance.now() - start));
}

/**
 * Access-token verifications per second on one core: the full verifier (jose, RS256 pinned, typ,
 * iss, aud, exp, required claims) without and with the verified-token cache, beside raw
 * `crypto.verify` of the same RS256 signatures as the floor of what verification can cost.
 * Tokens cycle through 1000 distinct ones, as many sessions would.
 */
export async function run(): Promise<BenchRow[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'moondraft-bench-identity-'));
  try {
    const file = path.join(dir, 'keys.json');
    ensureKeysetFile(file, systemClock.now());
    const keys = await SigningKeys.load(file, 3_630_000);
    const options = { issuer: 'https://bench.moondraft', audience: 'moondraft-api', ttlSec: 3600, clockToleranceSec: 30 };
    const uncached = new AccessTokens(keys, options, systemClock);
    const cached = new AccessTokens(keys, { ...options, cacheSize: 10_000 }, systemClock);

    const tokens: string[] = [];
    for (let i = 0; i < DISTINCT_TOKENS; i++) {
      const { token } = await uncached.issue({ accountId: `acc_${i}`, wallet: `0x${i.toString(16).padStart(40, '0')}`, role: 'trader', sessionId: `ses_${i}`, authTime: Math.floor(Date.now() / 1000) });
      tokens.push(token);
    }
    const publicKey = createPublicKey(keys.active().privateKey);
    const raw = tokens.map((t) => {
      const dot = t.lastIndexOf('.');
      return { data: Buffer.from(t.slice(0, dot)), signature: Buffer.from(t.slice(dot + 1), 'base64url') };
    });

    const check = (ok: boolean) => {
      if (!ok) throw new Error('a benchmark verification failed');
    };
    const rawRate = await opsPerSecond((i) => {
      const r = raw[i % DISTINCT_TOKENS]!;
      check(cryptoVerify('RSA-SHA256', r.data, publicKey, r.signature));
    });
    const fullRate = await opsPerSecond(async (i) => check((await uncached.verify(tokens[i % DISTINCT_TOKENS]!)).ok));
    const cachedRate = await opsPerSecond(async (i) => check((await cached.verify(tokens[i % DISTINCT_TOKENS]!)).ok));

    const baseline = { name: 'crypto.verify RS256 (raw signature check only)', value: rawRate };
    return [
      { name: 'access-token verify, full (jose RS256 + claims), no cache', value: fullRate, unit: 'verifications/s (1 core)', baseline },
      { name: 'access-token verify with verified-token cache (1000 live tokens)', value: cachedRate, unit: 'verifications/s (1 core)', baseline },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const row of await run()) console.log(`${row.name}: ${row.value} ${row.unit}${row.baseline ? ` (baseline ${row.baseline.name}: ${row.baseline.value})` : ''}`);
}
