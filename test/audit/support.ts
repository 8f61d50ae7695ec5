import { lockHead, recordHash } from '../../src/audit/chain.js';
import type { AuditEvent } from '../../src/audit/events.js';
import type { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { fund, USDC } from '../support/trading.js';
import { serviceAvailable } from '../support/services.js';

/** Whether the scale-out backend (PostgreSQL and Redis) can run here; see serviceAvailable. */
export async function scaleoutAvailable(): Promise<boolean> {
  return (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));
}

/** `n` admin events, each in its own append. */
export async function seedEvents(server: TestServer, n: number, prefix = 'acc_seed'): Promise<void> {
  for (let i = 0; i < n; i++) {
    const event: AuditEvent = { type: 'admin.limits.changed', accountId: `${prefix}${i}`, actorId: 'acc_admin', details: { limits: { market: 100 + i } } };
    await server.services.audit.record(event);
  }
}

export function rows(server: TestServer) {
  return server.services.store.db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
}

/** Every stored API access event, oldest first, as the auditor sees them (access.batch records expanded). */
export async function accessViews(server: Pick<TestServer, 'services'>, filter: { accountId?: string } = {}) {
  const views = [];
  for await (const v of server.services.audit.export({ type: 'access.request', ...filter })) views.push(v);
  return views;
}

export async function head(server: TestServer) {
  return server.services.store.db.selectFrom('audit_chain_head').selectAll().where('id', '=', 1).executeTakeFirstOrThrow();
}

/** Rewrites records from `fromSeq` to the end with consistent hashes, as an attacker with DB access would. */
export async function rehashFrom(server: TestServer, fromSeq: number): Promise<void> {
  const db = server.services.store.db;
  const all = await rows(server);
  let prev = all.find((r) => Number(r.seq) === fromSeq - 1)?.hash ?? '0'.repeat(64);
  for (const r of all.filter((x) => Number(x.seq) >= fromSeq)) {
    const fixed = { ...r, seq: Number(r.seq), at: Number(r.at), prev_hash: prev };
    const hash = recordHash(fixed);
    await db.updateTable('audit_events').set({ prev_hash: prev, hash }).where('id', '=', r.id).execute();
    prev = hash;
  }
  await db.updateTable('audit_chain_head').set({ hash: prev }).where('id', '=', 1).execute();
}

/** Empties the audit log of a shared test server (tests tamper with it), ordered with in-flight appends. */
export async function resetAuditLog(server: TestServer): Promise<void> {
  await server.services.audit.settle();
  await server.services.store.transaction(async (trx) => {
    await lockHead(trx, server.services.store.dialect);
    await trx.deleteFrom('audit_events').execute();
    await trx.deleteFrom('audit_checkpoints').execute();
    await trx.updateTable('audit_chain_head').set({ seq: 0, hash: '0'.repeat(64) }).where('id', '=', 1).execute();
  });
}

export type Session = Awaited<ReturnType<typeof sessionFor>>;

/**
 * The server the write-route audit tests call every route on: sandbox, a manual clock, an admin
 * and a funded trader, each with rate limits out of the way (the tests send more than the
 * categories allow a second). `fresh` makes another such session.
 */
export async function writeRoutesServer(clock: ManualClock) {
  const server = await startTestServer({ clock, env: { MOONDRAFT_SANDBOX: 'true' } });
  const req = (method: string, url: string, s: Session, payload?: unknown) =>
    server.app.inject({ method: method as 'GET', url, headers: s.headers, ...(payload !== undefined ? { payload: payload as object } : {}) });
  const fresh = async (role?: 'admin') => {
    const s = await sessionFor(server, role ? { role } : {});
    await server.services.partnerLimits.set(s.account.id, { account: 10_000, tokens: 10_000, trading: 10_000 }, 'test');
    return s;
  };
  /** Another account resting a buy of 50 MOON at 1: something for a position close to sell into. */
  const restingBuy = async () => {
    const maker = await fresh();
    await fund(server.services.trading, maker.account.id, 'USDC', USDC('1000'));
    await req('POST', '/api/v1/trading/orders', maker, { market: 'MOON-USDC', side: 'buy', type: 'limit', price: '1', quantity: '50' });
  };
  const admin = await fresh('admin');
  const trader = await fresh();
  await fund(server.services.trading, trader.account.id, 'USDC', USDC('100000'));
  return { server, req, fresh, restingBuy, admin, trader };
}
