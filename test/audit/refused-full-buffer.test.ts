import { describe, expect, it } from 'vitest';
import { startTestServer } from '../support/server.js';

describe('flood refusals and a full audit buffer', () => {
  it('keeps the tallies a full buffer cannot take for the next window: no refused request is lost', async () => {
    const server = await startTestServer({ env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000', MOONDRAFT_AUDIT_BATCH_SIZE: '2', MOONDRAFT_AUDIT_BUFFER_CAPACITY: '2' } });
    try {
      const audit = server.services.audit;
      for (let i = 0; i < 2; i++) audit.enqueue({ type: 'auth.failed', outcome: 'denied', details: { code: 'invalid_token' } });
      for (let n = 0; n < 3; n++) for (let i = 0; i < 100; i++) audit.tallyRefusal(`198.51.${n}.0/24`, 'ip_blocked');
      await audit.settle();
      let counted = 0;
      for await (const v of audit.export({ type: 'access.refused' })) counted += (v.details as { count: number }).count;
      expect(counted).toBe(300);
      const dropped = (await audit.list({ type: 'audit.events_dropped' }, { limit: 10 })).records;
      expect(dropped).toEqual([]);
      expect(await audit.verify()).toMatchObject({ ok: true });
    } finally {
      await server.close();
    }
  });
});
