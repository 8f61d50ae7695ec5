import { describe, expect, it } from 'vitest';
import { dropSchema, newIsolation, startTestServer } from '../../test/support/server.js';
import { serviceAvailable } from '../../test/support/services.js';

const postgres = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

describe.skipIf(!postgres)('migrations on PostgreSQL', () => {
  it('migrate a fresh schema while another schema of the database is already migrated', async () => {
    const other = newIsolation();
    const mine = newIsolation();
    const a = await startTestServer({ backend: 'scaleout', isolation: other });
    try {
      const b = await startTestServer({ backend: 'scaleout', isolation: mine });
      try {
        expect(await b.services.store.db.selectFrom('accounts').selectAll().execute()).toEqual([]);
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
      await dropSchema(other.pgSchema);
      await dropSchema(mine.pgSchema);
    }
  });
});
