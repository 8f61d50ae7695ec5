import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

async function settle() {
  await (server.services.audit as unknown as { settle?: () => Promise<void> }).settle?.();
}

describe('admin actions are audited in the transaction of the change', () => {
  it('a role change through the admin route is recorded once, with actor and outcome', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    const target = await sessionFor(server);
    const res = await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target.account.wallet}/role`, headers: admin.headers, payload: { role: 'developer' } });
    expect(res.statusCode).toBe(200);
    await settle();
    const { records } = await server.services.audit.list({ type: 'admin.role.changed', accountId: target.account.id }, { limit: 10 });
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ type: 'admin.role.changed', accountId: target.account.id, actorId: admin.account.id, outcome: 'success' });
    expect(records[0]!.details).toMatchObject({ from: 'trader', to: 'developer' });
    // …and not a second time from the security event.
    const other = await server.services.audit.list({ type: 'security.other', accountId: target.account.id }, { limit: 10 });
    expect(other.records).toHaveLength(0);
  });

  it('a role change that fails to commit leaves neither the change nor its record', async () => {
    const target = await sessionFor(server);
    const before = (await server.services.audit.list({ type: 'admin.role.changed' }, { limit: 100 })).records.length;
    // Make the audit append fail inside the transaction: the role update must roll back with it.
    const audit = server.services.audit as unknown as { recordIn: (...a: unknown[]) => Promise<unknown> };
    const original = audit.recordIn;
    audit.recordIn = async () => {
      throw new Error('audit store unavailable');
    };
    try {
      await expect(server.services.accounts.setRole(target.account.wallet, 'admin', 'test')).rejects.toThrow('audit store unavailable');
    } finally {
      audit.recordIn = original;
    }
    expect((await server.services.accounts.byId(target.account.id))!.role).toBe('trader');
    expect((await server.services.audit.list({ type: 'admin.role.changed' }, { limit: 100 })).records.length).toBe(before);
  });
});
