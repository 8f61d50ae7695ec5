import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/events.js';
import type { AuditLog } from '../../src/audit/audit-log.js';
import { ManualClock } from '../../src/lib/clock.js';
import type { Store } from '../../src/store/db.js';
import { Withdrawals } from '../../src/trading/withdrawals/index.js';
import { gated, gateAfterRead } from '../support/gate.js';
import { serviceAvailable } from '../support/services.js';
import { openTestStore } from '../support/stores.js';

const pg = await serviceAvailable('postgres');

// Two admins (on two scale-out servers, or two requests on one PostgreSQL pool) set one account's
// verification tier at the same moment. SQLite runs their transactions one after the other.
describe.skipIf(!pg)('withdrawal tiers set concurrently (postgres)', () => {
  let inner: Store;
  const gate = gateAfterRead('withdrawal_settings');
  const audited: AuditEvent[] = [];
  let withdrawals: Withdrawals;
  beforeAll(async () => {
    inner = await openTestStore('postgres');
    const audit = { recordIn: async (_trx: unknown, e: AuditEvent) => void audited.push(e) } as unknown as AuditLog;
    const config = { tierLimitsUsdc: ['1000', '50000', '1000000'], autoApproveUsdc: '1000' };
    withdrawals = new Withdrawals({ store: gated(inner, gate.plugin), clock: new ManualClock(), audit, config } as unknown as ConstructorParameters<typeof Withdrawals>[0]);
  });
  afterAll(async () => {
    await inner.close();
  });

  it('each audited change starts from the tier the one before it left', async () => {
    const acc = 'acc_tier_race';
    await inner.db.insertInto('accounts').values({ id: acc, wallet: '0x00000000000000000000000000000000000000a2', chain: 'ethereum', role: 'trader', created_at: 0, updated_at: 0 }).execute();
    const admin = (id: string) => ({ kind: 'session' as const, id: `ses_${id}`, accountId: id });
    gate.arm();
    // Admin A sets tier 1 and pauses after reading the tier (0)…
    const first = withdrawals.setTier(admin('acc_admin_a'), acc, 1);
    await gate.reached;
    // …while admin B sets tier 2.
    const second = withdrawals.setTier(admin('acc_admin_b'), acc, 2);
    await new Promise((r) => setTimeout(r, 200));
    gate.release();
    await Promise.all([first, second]);

    const changes = audited.filter((e) => e.type === 'admin.withdrawal_tier.changed').map((e) => e.details as { from: number; to: number });
    expect(changes).toHaveLength(2);
    // Whichever went first, the second recorded change starts where the first ended.
    expect(changes[1]!.from).toBe(changes[0]!.to);
    const stored = await inner.db.selectFrom('withdrawal_settings').select('tier').where('account_id', '=', acc).executeTakeFirstOrThrow();
    expect(Number(stored.tier)).toBe(changes[1]!.to);
  });
});
