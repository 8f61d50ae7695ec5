import { describe, expect, it } from 'vitest';
import type { Scope } from '../rbac/roles.js';
import { evaluateChecklist } from './checklist.js';
import type { ApiKeyRecord } from './records.js';

const NOW = Date.UTC(2026, 0, 1);
let n = 0;
function key(over: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  n++;
  return {
    id: `key_${n}`, accountId: 'acc_1', label: `key ${n}`, type: 'hmac', environment: 'sandbox', keyHash: `h${n}`, prefix: `md_test_${n}`,
    secretEnc: 'v1.x', publicKey: null, prevSecretEnc: null, prevPublicKey: null, prevValidUntil: null,
    scopes: ['orders:read'], ipWhitelist: ['198.51.100.1'], allowedCountries: [], lifetimeDays: 90, expiresAt: NOW + 1000, version: 1,
    revokedAt: null, suspendedAt: null, suspendedReason: null, rotationRemindedAt: null, regeneratedAt: null,
    lastUsedAt: NOW, lastSignedAt: NOW, createdAt: NOW, updatedAt: NOW, ...over,
  };
}
const result = (keys: ApiKeyRecord[], id: string, role: 'trader' | 'developer' = 'trader') =>
  evaluateChecklist({ keys, role, environment: 'sandbox', now: NOW }).items.find((i) => i.id === id)!;

describe('Before Going Live checklist', () => {
  it('passes for a well-kept set of keys', () => {
    const c = evaluateChecklist({ keys: [key(), key({ revokedAt: NOW - 1 })], role: 'trader', environment: 'sandbox', now: NOW });
    expect(c.items.map((i) => i.result)).toEqual(['pass', 'pass', 'pass', 'pass', 'pass']);
    expect(c.passed).toBe(5);
  });

  it('ignores revoked and expired keys for the per-key items', () => {
    const stale = key({ ipWhitelist: [], expiresAt: NOW });
    expect(result([stale, key({ revokedAt: NOW - 1, ipWhitelist: [] })], 'ip_whitelisting').result).toBe('pass');
  });

  it('flags keys usable from any address (suspended ones too)', () => {
    const open = key({ ipWhitelist: [], suspendedAt: NOW - 1 });
    expect(result([key(), open], 'ip_whitelisting')).toMatchObject({ result: 'fail', keyIds: [open.id] });
  });

  it('flags keys from another environment and keys sharing a label', () => {
    const foreign = key({ environment: 'live' });
    expect(result([key(), foreign], 'separate_keys')).toMatchObject({ result: 'fail', keyIds: [foreign.id] });
    const a = key({ label: 'Bot' });
    const b = key({ label: 'bot' });
    expect(result([a, b], 'separate_keys').keyIds.sort()).toEqual([a.id, b.id].sort());
  });

  it('flags withdrawals next to trading, scopes beyond the role, and keys holding every scope', () => {
    const both = key({ scopes: ['orders:write', 'withdrawals:write'] });
    expect(result([both], 'least_scopes').keyIds).toEqual([both.id]);
    const demoted = key({ scopes: ['market:read', 'orders:write'] });
    expect(result([demoted], 'least_scopes', 'trader').result).toBe('pass');
    expect(result([demoted], 'least_scopes', 'developer').keyIds).toEqual([demoted.id]);
    const all = key({ scopes: ['market:read', 'account:read', 'orders:read', 'portfolio:read', 'webhooks:write'] satisfies Scope[] });
    expect(result([all], 'least_scopes', 'developer').keyIds).toEqual([all.id]);
  });

  it('asks for a rehearsed revocation and a verified signed request per key that needs signing', () => {
    expect(result([key()], 'revocation_tested').result).toBe('fail');
    const neverSigned = key({ lastSignedAt: null });
    const marketOnly = key({ scopes: ['market:read'], lastSignedAt: null });
    expect(result([neverSigned, marketOnly], 'request_signing')).toMatchObject({ result: 'fail', keyIds: [neverSigned.id] });
  });
});
