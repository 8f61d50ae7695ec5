import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { KEY_LIMITS } from '../../src/security/keys/service.js';
import { session, startKeysServer, type KeysTestServer } from './support.js';

// Revoked keys stay (their id still answers key_revoked), and an account may revoke and create
// keys in a loop within its rate limit: the list must not grow with every key ever revoked.
describe('GET /api/v1/keys after many revoked keys', () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 1));
  let ks: KeysTestServer;
  beforeAll(async () => {
    ks = await startKeysServer({ backend: 'embedded', clock });
  });
  afterAll(() => ks.close());

  it('lists every key not revoked and only the most recently revoked ones', async () => {
    const owner = await session(ks);
    const asOwner = { accountId: owner.account.id, role: 'trader' as const };
    const live: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await ks.server.services.apiKeys.create(asOwner, { label: `kept ${i}`, scopes: ['market:read'] });
      if (!created.ok) throw new Error('create failed');
      live.push(created.value.record.id);
      clock.advance(1000);
    }
    const revoked: string[] = [];
    const churn = KEY_LIMITS.maxRevokedListed + 50;
    for (let i = 0; i < churn; i++) {
      const created = await ks.server.services.apiKeys.create(asOwner, { label: `churn ${i}`, scopes: ['market:read'] });
      if (!created.ok) throw new Error('create failed');
      expect((await ks.server.services.apiKeys.revoke(asOwner, created.value.record.id)).ok).toBe(true);
      revoked.push(created.value.record.id);
      clock.advance(1000);
    }
    const res = await ks.app.inject({ method: 'GET', url: '/api/v1/keys', headers: owner.headers });
    expect(res.statusCode).toBe(200);
    const ids = (res.json() as { keys: { id: string }[] }).keys.map((k) => k.id);
    expect(ids).toHaveLength(live.length + KEY_LIMITS.maxRevokedListed);
    // Newest first: the newest revoked keys, then the keys still held (created before them).
    expect(ids).toEqual([...revoked.slice(-KEY_LIMITS.maxRevokedListed).reverse(), ...[...live].reverse()]);
    // An older revoked key is still readable by id.
    expect((await ks.app.inject({ method: 'GET', url: `/api/v1/keys/${revoked[0]}`, headers: owner.headers })).statusCode).toBe(200);
    const checklist = await ks.app.inject({ method: 'GET', url: '/api/v1/security/checklist', headers: owner.headers });
    const items = (checklist.json() as { items: { id: string; result: string }[] }).items;
    expect(items.find((i) => i.id === 'revocation_tested')?.result).toBe('pass');
  });
});
