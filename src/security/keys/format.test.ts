import { base58 } from '@scure/base';
import { describe, expect, it } from 'vitest';
import { displayPrefix, environmentOfKey, generateApiKey, generateApiSecret, hashApiKey } from './format.js';

describe('API key format', () => {
  it('carries the environment in its prefix and at least 128 random bits', () => {
    const test = generateApiKey('sandbox');
    const live = generateApiKey('live');
    expect(test).toMatch(/^md_test_[1-9A-HJ-NP-Za-km-z]+$/);
    expect(live).toMatch(/^md_live_[1-9A-HJ-NP-Za-km-z]+$/);
    expect(base58.decode(test.slice(8)).length * 8).toBeGreaterThanOrEqual(128);
    expect(environmentOfKey(test)).toBe('sandbox');
    expect(environmentOfKey(live)).toBe('live');
    expect(environmentOfKey('md_prod_abc')).toBeUndefined();
    expect(environmentOfKey('md_test_0OIl0OIl0OIl0OIl0OIl')).toBeUndefined(); // not base58
  });

  it('makes secrets of 256 random bits, all different', () => {
    const secrets = new Set(Array.from({ length: 100 }, generateApiSecret));
    expect(secrets.size).toBe(100);
    for (const s of secrets) expect(base58.decode(s.slice(4)).length).toBe(32);
  });

  it('stores only a hash and a short display prefix', () => {
    const key = generateApiKey('sandbox');
    expect(hashApiKey(key)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey(key)).not.toContain(key.slice(8, 16));
    expect(displayPrefix(key)).toBe(key.slice(0, 12));
  });
});
