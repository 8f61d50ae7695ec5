import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { KEY_LIMITS } from '../../src/security/keys/service.js';
import { serviceAvailable } from '../support/services.js';
import { code, session, startKeysServer, type KeysTestServer } from './support.js';

const scaleoutUp = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));
const backends = scaleoutUp ? (['embedded', 'scaleout'] as const) : (['embedded'] as const);

// Rate limits are per key: without a bound on keys, one account could multiply them at will.
describe.each(backends)('API keys per account on %s', (backend) => {
  const clock = new ManualClock(Date.UTC(2026, 4, 1));
  let ks: KeysTestServer;
  beforeAll(async () => {
    ks = await startKeysServer({ backend, clock });
  });
  afterAll(() => ks.close());

  it(`holds at most ${KEY_LIMITS.maxKeysPerAccount} keys that are not revoked, also when creations race; revoking one makes room`, async () => {
    const owner = await session(ks);
    const asOwner = { accountId: owner.account.id, role: 'trader' as const };
    for (let i = 0; i < KEY_LIMITS.maxKeysPerAccount - 3; i++) {
      const created = await ks.server.services.apiKeys.create(asOwner, { label: `bot ${i}`, scopes: ['market:read'] });
      expect(created.ok).toBe(true);
    }
    const racing = await Promise.all(
      Array.from({ length: 6 }, (_, i) => ks.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: `race ${i}`, scopes: ['market:read'] } })),
    );
    expect(racing.filter((r) => r.statusCode === 201)).toHaveLength(3);
    const refused = racing.filter((r) => r.statusCode !== 201);
    expect(refused.map((r) => [r.statusCode, code(r)])).toEqual(Array.from({ length: 3 }, () => [403, 'key_limit_exceeded']));
    const listed = await ks.app.inject({ method: 'GET', url: '/api/v1/keys', headers: owner.headers });
    const keys = (listed.json() as { keys: { id: string }[] }).keys;
    expect(keys).toHaveLength(KEY_LIMITS.maxKeysPerAccount);

    expect((await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${keys[0]!.id}`, headers: owner.headers })).statusCode).toBe(200);
    expect((await ks.app.inject({ method: 'POST', url: '/api/v1/keys', headers: owner.headers, payload: { label: 'after revoke', scopes: ['market:read'] } })).statusCode).toBe(201);
    // Another account is not affected.
    const other = await session(ks);
    expect((await ks.app.inject({ method: 'POST', url: '/api/v1/keys', headers: other.headers, payload: { label: 'mine', scopes: ['market:read'] } })).statusCode).toBe(201);
  });
});
