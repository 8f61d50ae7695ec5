import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

describe('partner limits cached in a process', () => {
  let server: TestServer;
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  it('a clock stepped back does not keep a cached copy past its 30 s: a change whose message was missed applies', async () => {
    const s = await sessionFor(server);
    const limits = server.services.partnerLimits;
    expect((await limits.limitsFor(s.account.id)).account).toBe(25);
    expect(limits.cachedLimitsFor(s.account.id)?.account).toBe(25);
    // Lowered by another process whose announcement never arrived (shared state was down).
    await server.services.store.db
      .insertInto('rate_limit_overrides')
      .values({ account_id: s.account.id, market: null, trading: null, account: 3, tokens: null, updated_at: clock.now(), updated_by: 'other-process' })
      .execute();
    clock.advance(-3_600_000); // NTP steps the clock back an hour
    expect(limits.cachedLimitsFor(s.account.id)).toBeUndefined();
    expect((await limits.limitsFor(s.account.id)).account).toBe(3);
  });
});
