import { randomBytes } from 'node:crypto';
import { base58 } from '@scure/base';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { REDIS_URL, serviceAvailable } from '../../../test/support/services.js';
import { MemoryState } from '../../state/memory.js';
import type { SharedState } from '../../state/port.js';
import { RedisState } from '../../state/redis.js';
import { Keyring } from '../crypto/keyring.js';
import { NONCE_TTL_MS, REDEEMED_TTL_MS, SignInNonces } from './nonces.js';

const redisUp = await serviceAvailable('redis');
const opened: SharedState[] = [];
afterAll(async () => {
  for (const s of opened) await s.close();
});

const keyring = (versions: number[] = [1]) => new Keyring(new Map(versions.map((v) => [v, randomBytes(32)])));
const ETH = '0x' + 'ab'.repeat(20);
const OTHER_ETH = '0x' + 'cd'.repeat(20);
const SOL = '9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin';
const NOW = Date.UTC(2026, 5, 1, 12);

/** A state that fails the test on any use: what needs no I/O must not touch it. */
const untouchable = new Proxy({} as SharedState, {
  get(_t, prop) {
    if (prop === 'then') return undefined;
    throw new Error(`shared state used: ${String(prop)}`);
  },
});

describe('sign-in nonces need no stored state until redeemed', () => {
  it('issues and checks 10 000 challenges without touching shared state', () => {
    const nonces = new SignInNonces(keyring(), untouchable);
    for (let i = 0; i < 10_000; i++) {
      const nonce = nonces.issue('ethereum', ETH, NOW + NONCE_TTL_MS);
      expect(nonces.check(nonce, 'ethereum', ETH, NOW).ok).toBe(true);
    }
  });

  it('leaves an in-process state empty however many are issued', async () => {
    const state = new MemoryState();
    opened.push(state);
    const nonces = new SignInNonces(keyring(), state);
    for (let i = 0; i < 1_000; i++) nonces.issue('solana', SOL, NOW + NONCE_TTL_MS);
    expect(await state.keys('')).toEqual([]);
    expect(state.remembered('signin-nonce')).toBe(0);
  });

  it('is letters and digits only, 41 to 56 of them (EIP-4361: 8 or more; SIWS: 8 to 64), and never the same twice', () => {
    const nonces = new SignInNonces(keyring([1, 999_999]), untouchable);
    const seen = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const nonce = nonces.issue('ethereum', ETH, NOW + NONCE_TTL_MS);
      expect(nonce).toMatch(/^[a-zA-Z0-9]{41,56}$/);
      seen.add(nonce);
    }
    expect(seen.size).toBe(2_000);
  });
});

describe('a nonce is bound to its wallet, chain and expiry', () => {
  const ring = keyring();
  const nonces = new SignInNonces(ring, untouchable);

  it('is refused for another wallet or another chain', () => {
    const nonce = nonces.issue('ethereum', ETH, NOW + NONCE_TTL_MS);
    expect(nonces.check(nonce, 'ethereum', OTHER_ETH, NOW)).toMatchObject({ ok: false, reason: 'nonce_mismatch' });
    expect(nonces.check(nonce, 'solana', ETH, NOW)).toMatchObject({ ok: false, reason: 'nonce_mismatch' });
    const sol = nonces.issue('solana', SOL, NOW + NONCE_TTL_MS);
    expect(nonces.check(sol, 'ethereum', ETH, NOW)).toMatchObject({ ok: false, reason: 'nonce_mismatch' });
    expect(nonces.check(sol, 'solana', SOL, NOW).ok).toBe(true);
  });

  it('expires when its five minutes are over', () => {
    const nonce = nonces.issue('ethereum', ETH, NOW + NONCE_TTL_MS);
    expect(nonces.check(nonce, 'ethereum', ETH, NOW + NONCE_TTL_MS - 1).ok).toBe(true);
    expect(nonces.check(nonce, 'ethereum', ETH, NOW + NONCE_TTL_MS)).toMatchObject({ ok: false, reason: 'nonce_expired' });
    expect(nonces.check(nonce, 'ethereum', ETH, NOW + 3_600_000)).toMatchObject({ ok: false, reason: 'nonce_expired' });
  });

  it('refuses every one-character alteration, and any other spelling of its bytes', () => {
    const nonce = nonces.issue('ethereum', ETH, NOW + NONCE_TTL_MS);
    const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
    for (let i = 0; i < nonce.length; i++) {
      for (const c of ['1', 'z', alphabet[(alphabet.indexOf(nonce[i]!) + 1) % 58]!]) {
        if (c === nonce[i]) continue;
        const altered = nonce.slice(0, i) + c + nonce.slice(i + 1);
        expect(nonces.check(altered, 'ethereum', ETH, NOW).ok, altered).toBe(false);
      }
    }
    for (const altered of [nonce.slice(1), nonce + '1', '1' + nonce, nonce.toLowerCase(), nonce.replace(/./, '0'), '', 'abcdefgh', 'a'.repeat(65)]) {
      expect(nonces.check(altered, 'ethereum', ETH, NOW).ok, altered).toBe(false);
    }
  });

  it('refuses a forged one: a longer life, another key, a version this keyring lacks', () => {
    const bytes = Buffer.from(base58.decode(nonces.issue('ethereum', ETH, NOW + NONCE_TTL_MS)));
    bytes.writeUIntBE(NOW + 10 * NONCE_TTL_MS, 19, 6); // the expiry, pushed out
    expect(nonces.check(base58.encode(bytes), 'ethereum', ETH, NOW + 2 * NONCE_TTL_MS)).toMatchObject({ ok: false, reason: 'nonce_mismatch' });
    // Made with another master key of the same version.
    const elsewhere = new SignInNonces(keyring(), untouchable).issue('ethereum', ETH, NOW + NONCE_TTL_MS);
    expect(nonces.check(elsewhere, 'ethereum', ETH, NOW)).toMatchObject({ ok: false, reason: 'nonce_mismatch' });
    // Made under a master key version this keyring does not hold.
    const unknown = new SignInNonces(keyring([7]), untouchable).issue('ethereum', ETH, NOW + NONCE_TTL_MS);
    expect(nonces.check(unknown, 'ethereum', ETH, NOW)).toMatchObject({ ok: false, reason: 'nonce_unknown' });
    // Random bytes of the right length.
    expect(nonces.check(base58.encode(randomBytes(41)), 'ethereum', ETH, NOW)).toMatchObject({ ok: false });
  });

  it('refuses one that claims to outlive a nonce’s life (issued by a process whose clock ran far ahead)', () => {
    const nonce = nonces.issue('ethereum', ETH, NOW + NONCE_TTL_MS + 3_600_000);
    expect(nonces.check(nonce, 'ethereum', ETH, NOW)).toMatchObject({ ok: false, reason: 'nonce_unknown' });
  });

  it('stays valid across a master key rotation: older versions verify, the newest issues', () => {
    const k1 = randomBytes(32);
    const v1 = new Keyring(new Map([[1, k1]]));
    const both = new Keyring(new Map([[1, k1], [2, randomBytes(32)]]));
    const old = new SignInNonces(v1, untouchable).issue('ethereum', ETH, NOW + NONCE_TTL_MS);
    const rotated = new SignInNonces(both, untouchable);
    expect(rotated.check(old, 'ethereum', ETH, NOW).ok).toBe(true);
    expect(rotated.check(rotated.issue('ethereum', ETH, NOW + NONCE_TTL_MS), 'ethereum', ETH, NOW).ok).toBe(true);
  });

  it('is refused when issued before the memory of redeemed nonces began (a restart)', () => {
    const ring = keyring();
    const before = new SignInNonces(ring, untouchable).issue('ethereum', ETH, NOW + NONCE_TTL_MS);
    const restarted = new SignInNonces(ring, untouchable, { since: NOW + 1 });
    expect(restarted.check(before, 'ethereum', ETH, NOW + 1)).toMatchObject({ ok: false, reason: 'nonce_before_memory' });
    expect(restarted.check(restarted.issue('ethereum', ETH, NOW + 1 + NONCE_TTL_MS), 'ethereum', ETH, NOW + 1).ok).toBe(true);
  });
});

async function connectedRedis(prefix: string): Promise<RedisState> {
  const state = new RedisState({ url: REDIS_URL, prefix });
  opened.push(state);
  for (let i = 0; i < 100 && !(await state.ping()); i++) await new Promise((r) => setTimeout(r, 20));
  return state;
}

/** Two processes' views of one shared state. */
async function inMemory(): Promise<readonly [SharedState, SharedState]> {
  const state = new MemoryState();
  opened.push(state);
  return [state, state];
}

async function inRedis(): Promise<readonly [SharedState, SharedState]> {
  const prefix = `t:${randomBytes(6).toString('hex')}:`;
  return [await connectedRedis(prefix), await connectedRedis(prefix)];
}

describe.each([['memory', inMemory] as const, ...(redisUp ? [['redis (two connections, as two processes)', inRedis] as const] : [])])('redeeming on %s', (_name, make) => {
  it('redeems a nonce once, however many race for it', async () => {
    const [a, b] = await make();
    const ring = keyring();
    const one = new SignInNonces(ring, a);
    const two = new SignInNonces(ring, b);
    const nonce = one.issue('ethereum', ETH, Date.now() + NONCE_TTL_MS);
    const checked = [one, two].map((n) => n.check(nonce, 'ethereum', ETH, Date.now()));
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const c = checked[i % 2]!;
        if (!c.ok) throw new Error('check failed');
        return (i % 2 ? two : one).redeem(c, Date.now());
      }),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok).every((r) => !r.ok && r.reason === 'nonce_used')).toBe(true);
    // Another nonce for the same wallet is its own.
    const next = two.issue('ethereum', ETH, Date.now() + NONCE_TTL_MS);
    const c = one.check(next, 'ethereum', ETH, Date.now());
    expect(c.ok && (await one.redeem(c, Date.now())).ok).toBe(true);
  });

  it('remembers a redeemed nonce for longer than it lives', async () => {
    const [a] = await make();
    expect(REDEEMED_TTL_MS).toBeGreaterThan(NONCE_TTL_MS);
    const nonces = new SignInNonces(keyring(), a);
    const c = nonces.check(nonces.issue('solana', SOL, Date.now() + NONCE_TTL_MS), 'solana', SOL, Date.now());
    if (!c.ok) throw new Error('check failed');
    expect((await nonces.redeem(c, Date.now())).ok).toBe(true);
    if (a instanceof RedisState) {
      const ttl = await a.ttl(`signin-nonce:${c.id}`);
      expect(ttl).toBeGreaterThan(NONCE_TTL_MS);
    }
    expect(await nonces.redeem(c, Date.now())).toMatchObject({ ok: false, reason: 'nonce_used' });
  });
});

describe.runIf(redisUp)('redeeming after Redis lost its memory', () => {
  it('refuses a nonce redeemed before the loss, on any process, at the first request that meets it', async () => {
    const prefix = `t:${randomBytes(6).toString('hex')}:`;
    const [a, b] = [await connectedRedis(prefix), await connectedRedis(prefix)];
    const ring = keyring();
    const began = Date.now() - 1_000;
    await a.set('replay:held', String(began));
    const one = new SignInNonces(ring, a, { since: began, held: began });
    const two = new SignInNonces(ring, b, { since: began, held: began });
    const nonce = one.issue('ethereum', ETH, Date.now() + NONCE_TTL_MS);
    const c = one.check(nonce, 'ethereum', ETH, Date.now());
    if (!c.ok) throw new Error('check failed');
    expect((await one.redeem(c, Date.now())).ok).toBe(true);
    // Redis restarts empty (no persistence): the redeemed nonce is forgotten.
    const redis = new Redis(REDIS_URL);
    try {
      const keys = await redis.keys(`${prefix}*`);
      await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
    await new Promise((r) => setTimeout(r, 5));
    const again = two.check(nonce, 'ethereum', ETH, Date.now());
    expect(again.ok).toBe(true); // no I/O yet: the loss is not known
    if (!again.ok) return;
    expect(await two.redeem(again, Date.now())).toMatchObject({ ok: false, reason: 'nonce_before_memory' });
    // And the other process, once it has met the loss too.
    expect(await one.redeem(c, Date.now())).toMatchObject({ ok: false });
    expect(one.check(nonce, 'ethereum', ETH, Date.now())).toMatchObject({ ok: false, reason: 'nonce_before_memory' });
  });
});
