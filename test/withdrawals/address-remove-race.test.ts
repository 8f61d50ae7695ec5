import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';

const scaleout = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));
const DEST = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';

describe.skipIf(!scaleout)('removing a saved withdrawal address (PostgreSQL)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ backend: 'scaleout' });
  });
  afterAll(() => server?.close());

  it('a removal whose row another removal deleted meanwhile answers not_found and records nothing', async () => {
    const s = await sessionFor(server);
    const actor = { kind: 'session' as const, id: s.sessionId, accountId: s.account.id };
    const { withdrawals, store, clock } = server.services;
    const saved = await withdrawals.addAddress(s.account.id, actor, { chain: 'evm', address: DEST }, clock.now());
    if (!saved.ok) throw new Error(saved.detail);
    const id = saved.value.id;

    // A first removal, held open after its delete: the second reads the row (not yet gone for it)
    // and its delete waits on the first's row lock.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let deleted!: () => void;
    const firstDeleted = new Promise<void>((resolve) => (deleted = resolve));
    const first = store.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('withdrawal_addresses').where('id', '=', id).execute();
      deleted();
      await held;
    });
    await firstDeleted;
    const second = withdrawals.removeAddress(s.account.id, actor, id);
    await new Promise((r) => setTimeout(r, 300)); // the second is now waiting on the row lock
    release();
    await first;
    expect(await second).toMatchObject({ ok: false, code: 'not_found' });
    await (server.services.audit as unknown as { settle?: () => Promise<void> }).settle?.();
    const removed = (await server.services.audit.list({ type: 'trading.withdrawal.address_removed', accountId: s.account.id }, { limit: 10 })).records;
    expect(removed).toHaveLength(0);
  });
});
