import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';

const scaleout = (await serviceAvailable('redis')) && (await serviceAvailable('postgres'));
const backends = (['embedded', 'scaleout'] as const).filter((b) => b === 'embedded' || scaleout);

/** GET /api/v1/account serves the account's identity from memory after the first read; its role is never cached. */
describe.each(backends)('GET /api/v1/account (%s)', (backend) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend });
  });
  afterAll(() => server.close());

  const me = (headers: Record<string, string>) => server.app.inject({ method: 'GET', url: '/api/v1/account', headers });

  it('answers the role in force after a change, with the same identity as before', async () => {
    const s = await sessionFor(server);
    const before = (await me(s.headers)).json();
    expect(before).toEqual({ id: s.account.id, wallet: s.account.wallet, chain: 'ethereum', role: 'trader', createdAt: s.account.createdAt });
    const changed = await server.services.accounts.setRole(s.account.wallet, 'developer', 'test');
    expect(changed.ok).toBe(true);
    expect((await me(s.headers)).json()).toEqual({ ...before, role: 'developer' });
  });

  it('identity(): the account without its role, the same frozen object on later calls; an unknown id answers undefined', async () => {
    const { accounts } = server.services;
    expect(await accounts.identity('acc_00000000000000000000000000')).toBeUndefined();
    const s = await sessionFor(server);
    const identity = await accounts.identity(s.account.id);
    expect(identity).toEqual({ id: s.account.id, wallet: s.account.wallet, chain: 'ethereum', createdAt: s.account.createdAt });
    expect(identity).not.toHaveProperty('role');
    expect(Object.isFrozen(identity)).toBe(true);
    expect(await accounts.identity(s.account.id)).toBe(identity);
  });
});
