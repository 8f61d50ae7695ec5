import { describe, expect, it } from 'vitest';
import { rateLimitHeaders, wholeSeconds } from './headers.js';
import { cooldownMs, judge, type PenaltyRules } from './penalties.js';
import { categoryOf, DEFAULT_LIMITS, effectiveLimits, targetFor } from './policies.js';

const ceilings = { signinPerIp: 10, publicPerIp: 50 };

describe('categoryOf (API.md "Rate limits" table)', () => {
  it.each([
    ['/api/v1/market/markets', 'market'],
    ['/api/v1/market/orderbook/:market', 'market'],
    ['/api/v1/trading/orders', 'trading'],
    ['/api/v1/trading/orders/:id', 'trading'],
    ['/api/v1/account', 'account'],
    ['/api/v1/account/balances', 'account'],
    ['/api/v1/account/withdrawals', 'account'],
    ['/api/v1/keys', 'account'],
    ['/api/v1/keys/:id/regenerate', 'account'],
    ['/api/v1/security/sessions', 'account'],
    ['/api/v1/webhooks', 'account'],
    ['/api/v1/sandbox/faucet', 'account'],
    ['/api/v1/tokens', 'tokens'],
    ['/api/v1/tokens/:symbol', 'tokens'],
  ] as const)('%s → %s', (path, category) => {
    expect(categoryOf(path)).toBe(category);
  });

  it.each(['/api/v1/auth/login', '/api/v1/admin/ip-blocks', '/api/v1/audit/log', '/api/v1/time', '/api/v1/marketing', '/api/v1/keysmith', '/health', '/api/v2/market/x'])('%s is uncategorised', (path) => {
    expect(categoryOf(path)).toBeNull();
  });
});

describe('targetFor', () => {
  it('keys API keys by key, sessions by account, with partner overrides', () => {
    const limits = effectiveLimits({ trading: 500 });
    expect(targetFor('/api/v1/trading/orders', { kind: 'apiKey', keyId: 'key_1', accountId: 'acc_1' }, limits, ceilings)).toEqual({
      policy: { name: 'trading', limit: 500, windowMs: 1000, failClosed: true },
      subject: 'k:key_1',
      accountId: 'acc_1',
    });
    expect(targetFor('/api/v1/market/tickers', { kind: 'session', accountId: 'acc_1' }, limits, ceilings)).toMatchObject({
      policy: { name: 'market', limit: 100, failClosed: false },
      subject: 'a:acc_1',
    });
  });

  it('does not limit authenticated requests on uncategorised paths', () => {
    expect(targetFor('/api/v1/admin/ip-blocks', { kind: 'session', accountId: 'acc_1' }, DEFAULT_LIMITS, ceilings)).toBeNull();
  });

  it('holds unauthenticated requests to per-address ceilings, tighter on sign-in', () => {
    const anon = { kind: 'anonymous', clientGroup: '203.0.113.9', exempt: false } as const;
    expect(targetFor('/api/v1/auth/challenge', anon, DEFAULT_LIMITS, ceilings)).toMatchObject({ policy: { name: 'signin', limit: 10 }, subject: 'ip:203.0.113.9' });
    expect(targetFor('/api/v1/time', anon, DEFAULT_LIMITS, ceilings)).toMatchObject({ policy: { name: 'public', limit: 50 } });
    expect(targetFor('/api/v1/market/tickers', anon, effectiveLimits({ market: 9999 }), ceilings)).toMatchObject({ policy: { name: 'market', limit: 100 } });
    expect(targetFor('/health', anon, DEFAULT_LIMITS, ceilings)).toBeNull();
    expect(targetFor('/metrics', anon, DEFAULT_LIMITS, ceilings)).toBeNull();
  });

  it('exempt addresses skip the unauthenticated ceilings but not the category limits', () => {
    const anon = { kind: 'anonymous', clientGroup: '127.0.0.1', exempt: true } as const;
    expect(targetFor('/api/v1/auth/login', anon, DEFAULT_LIMITS, ceilings)).toBeNull();
    expect(targetFor('/api/v1/market/tickers', anon, DEFAULT_LIMITS, ceilings)).toMatchObject({ policy: { name: 'market' } });
  });

  it('fails closed for trading, account and tokens only', () => {
    const failClosed = (path: string) => targetFor(path, { kind: 'session', accountId: 'a' }, DEFAULT_LIMITS, ceilings)!.policy.failClosed;
    expect([failClosed('/api/v1/trading/orders'), failClosed('/api/v1/account'), failClosed('/api/v1/tokens'), failClosed('/api/v1/market/tickers')]).toEqual([true, true, true, false]);
  });
});

const rules: PenaltyRules = {
  penaltyBaseMs: 1000,
  penaltyMaxMs: 60_000,
  penaltyGraceMs: 250,
  strikeWindowMs: 60_000,
  suspendAfterStrikes: 10,
  abuseFactor: 10,
  suspensionMs: 300_000,
};

describe('penalties', () => {
  it('doubles the cool-down with each strike after the first, capped', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 50].map((s) => cooldownMs(s, rules))).toEqual([0, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });

  it('first strike: only the window wait; later counted strikes put a cool-down in force', () => {
    expect(judge({ strikes: 1, counted: true, refused: 1, limit: 25, waitMs: 300 }, rules)).toEqual({ kind: 'limited', retryAfterMs: 300, holdMs: 0 });
    expect(judge({ strikes: 3, counted: true, refused: 3, limit: 25, waitMs: 300 }, rules)).toEqual({ kind: 'limited', retryAfterMs: 2000, holdMs: 2000 });
  });

  it('a refusal inside the grace period neither escalates nor shortens the wait', () => {
    expect(judge({ strikes: 3, counted: false, refused: 7, limit: 25, waitMs: 1700 }, rules)).toEqual({ kind: 'limited', retryAfterMs: 1700, holdMs: 0 });
  });

  it('suspends after enough strikes, or when refusals reach abuseFactor × limit', () => {
    expect(judge({ strikes: 10, counted: true, refused: 10, limit: 25, waitMs: 0 }, rules)).toEqual({ kind: 'suspended', retryAfterMs: 300_000 });
    expect(judge({ strikes: 1, counted: false, refused: 250, limit: 25, waitMs: 0 }, rules)).toEqual({ kind: 'suspended', retryAfterMs: 300_000 });
    expect(judge({ strikes: 1, counted: false, refused: 249, limit: 25, waitMs: 10 }, rules).kind).toBe('limited');
  });
});

describe('headers', () => {
  it('formats draft-ietf-httpapi-ratelimit-headers-11 fields', () => {
    expect(rateLimitHeaders('trading', 50, 1000, 12, 400)).toEqual({ 'RateLimit-Policy': '"trading";q=50;w=1', RateLimit: '"trading";r=12;t=1' });
    expect(rateLimitHeaders('market', 100, 1000, 100, 0)).toEqual({ 'RateLimit-Policy': '"market";q=100;w=1', RateLimit: '"market";r=100;t=0' });
  });

  it('rounds seconds up', () => {
    expect([0, 1, 999, 1000, 1001, 300_000].map(wholeSeconds)).toEqual([0, 1, 1, 1, 2, 300]);
  });
});
