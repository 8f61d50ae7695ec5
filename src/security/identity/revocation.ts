import type { Store } from '../../store/db.js';
import type { SharedState } from '../../state/port.js';

/**
 * Shared-state keys that carry session revocation and role changes to every process. Entries live
 * as long as an access token can (plus tolerance), after which the token itself is expired.
 */
export function sessionStateKeys(sessionId: string, accountId: string) {
  return {
    revoked: `sess:revoked:${sessionId}`,
    role: `acct:role:${accountId}`,
  };
}

/**
 * Writes the account's role in force to shared state, read under a share lock on its row
 * (PostgreSQL; SQLite transactions run one at a time), so that no role change (which locks the row
 * for update) can commit between the read and the write. Every change publishes this way after its
 * commit, and so do the security sync's passes: the last write is always of the latest committed
 * role, and once a change has returned no process is handed an older one. (Written without the
 * lock, a sync pass that had read the old role could write it over the change's own write.) `ttlMs`
 * gets the row's updated_at; nothing is written when it gives 0 or less.
 */
export async function publishRole(store: Store, state: SharedState, accountId: string, ttlMs: (updatedAt: number) => number): Promise<void> {
  await store.transaction(async (trx) => {
    let q = trx.selectFrom('accounts').select(['role', 'updated_at']).where('id', '=', accountId);
    if (store.dialect === 'postgres') q = q.forShare();
    const row = await q.executeTakeFirst();
    if (!row) return;
    const ttl = ttlMs(Number(row.updated_at));
    if (ttl > 0) await state.set(sessionStateKeys('', accountId).role, row.role, ttl);
  });
}
