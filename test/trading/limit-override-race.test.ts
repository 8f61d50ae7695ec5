import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/events.js';
import type { AuditLog } from '../../src/audit/audit-log.js';
import { ManualClock } from '../../src/lib/clock.js';
import type { Store } from '../../src/store/db.js';
import { TradingLimits } from '../../src/trading/limits.js';
import type { OrdersService } from '../../src/trading/orders/service.js';
import { gated, gateAfterRead } from '../support/gate.js';
import { serviceAvailable } from '../support/services.js';
import { openTestStore } from '../support/stores.js';

const pg = await serviceAvailable('postgres');

// Two admins (on two scale-out servers, or two requests on one PostgreSQL pool) set one account's
// daily trading limit at the same moment. SQLite runs their transactions one after the other.
describe.skipIf(!pg)('daily limit overrides set concurrently (postgres)', () => {
  let inner: Store;
  const gate = gateAfterRead('trading_limits');
  const audited: AuditEvent[] = [];
  let limits: TradingLimits;
  beforeAll(async () => {
    inner = await openTestStore('postgres');
    const audit = { recordIn: async (_trx: unknown, e: AuditEvent) => void audited.push(e) } as unknown as AuditLog;
    // The change answers the limits it wrote: the defaults come from the order service.
    const orders = { roleLimit: () => 0n, defaultMaxOpenOrders: () => 200 } as unknown as OrdersService;
    limits = new TradingLimits({ store: gated(inner, gate.plugin), clock: new ManualClock(), orders, audit });
  });
  afterAll(async () => {
    await inner.close();
  });

  it('every change of the stored limit is audited: the limit in force is the last one recorded', async () => {
    const acc = 'acc_limit_override_race';
    await inner.db.insertInto('accounts').values({ id: acc, wallet: '0x00000000000000000000000000000000000000a1', chain: 'ethereum', role: 'trader', created_at: 0, updated_at: 0 }).execute();
    expect((await limits.setOverride(acc, '500', 'acc_admin_a')).ok).toBe(true);
    gate.arm();
    // Admin A sets 500 again (no change, nothing to record) and pauses after reading the override…
    const first = limits.setOverride(acc, '500', 'acc_admin_a');
    await gate.reached;
    // …while admin B lowers it to 100 (recorded: 500 → 100).
    const second = limits.setOverride(acc, '100', 'acc_admin_b');
    await new Promise((r) => setTimeout(r, 200));
    gate.release();
    await Promise.all([first, second]);

    const stored = await inner.db.selectFrom('trading_limits').select('daily_notional').where('account_id', '=', acc).executeTakeFirstOrThrow();
    const last = audited.filter((e) => e.type === 'admin.trading_limit.changed').at(-1) as { details: { to: string } };
    expect(last.details.to).toBe(String(BigInt(stored.daily_notional) / 1_000_000n));
  });
});
