import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { startTestServer, type TestServer } from '../support/server.js';

const DAY = 86_400_000;

describe('retention of counted flood refusals', () => {
  let server: TestServer;
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  beforeAll(async () => {
    server = await startTestServer({ clock, env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000' } });
  });
  afterAll(() => server.close());

  it('keeps an access.refused record while its last counted request is within the retention period', async () => {
    const audit = server.services.audit;
    const first = clock.now();
    audit.tallyRefusal('198.51.100.0/24', 'ip_blocked');
    clock.advance(50_000);
    audit.tallyRefusal('198.51.100.0/24', 'ip_blocked');
    await audit.settle();
    // The first refusal is now past the retention period, the second 49 s inside it.
    clock.set(first + 731 * DAY + 1_000);
    await audit.purge();
    const refused = [];
    for await (const v of audit.export({ type: 'access.refused' })) refused.push(v.details);
    expect(refused).toEqual([expect.objectContaining({ count: 2, from: first, to: first + 50_000 })]);
  });
});
