import type { Store } from '../store/db.js';
import { GENESIS_HASH, lockHead, recordHash } from './chain.js';
import type { Checkpoints } from './checkpoints.js';
import { REFUSAL_WINDOW_MS } from './refusals.js';
import { ACCESS_BATCH_SPAN_MS } from './seal.js';

export interface PurgeResult {
  removed: number;
  /** Seq of the last record removed (the new anchor), or null when nothing was old enough. */
  throughSeq: number | null;
}

const CHUNK = 2000;

/**
 * The time of the youngest event a record holds: its own, or for an `access.batch` record (whose
 * `at` is its first request's) the latest its last request can be, so no request younger than the
 * cutoff goes with its batch; likewise for an `access.refused` count, whose `at` is its first
 * refusal's and which counts those of one window.
 */
function newestTime(r: { at: number | string | bigint; type: string }): number {
  const span = r.type === 'access.batch' ? ACCESS_BATCH_SPAN_MS : r.type === 'access.refused' ? REFUSAL_WINDOW_MS : 0;
  return Number(r.at) + (span > 0 ? span - 1 : 0);
}

/**
 * Removes the records older than `cutoff`, oldest first, in chunks of one transaction each. Only a
 * prefix of the chain is ever removed (up to the first record that is still young, even if later
 * records carry older times), and each chunk leaves a signed `anchor` checkpoint naming the last
 * record it removed, which the first remaining record links to: the chain still verifies from there.
 * Checkpoints about removed records go with them. A record is removed only when it is intact (its
 * hash recomputes, it links to the record or anchor before it): its clear `at` is what makes it old,
 * and an anchor signed over a changed record would erase the evidence, so the purge stops at the
 * first record that does not verify and leaves it for `verify` to report.
 */
export async function purgeBefore(store: Store, checkpoints: Checkpoints, cutoff: number, now: number): Promise<PurgeResult> {
  let removed = 0;
  let throughSeq: number | null = null;
  for (;;) {
    const chunk = await store.transaction(async (trx) => {
      // Head lock first: anchors are ordered with appends and other purging processes.
      await lockHead(trx, store.dialect);
      const rows = await trx.selectFrom('audit_events').selectAll().orderBy('seq').limit(CHUNK).execute();
      let last: { seq: number; hash: string } | undefined;
      let expected: { seq: number; hash: string } | undefined;
      if (rows.length > 0) {
        const firstSeq = Number(rows[0]!.seq);
        const anchor = firstSeq === 1 ? { hash: GENESIS_HASH } : await trx.selectFrom('audit_checkpoints').select('hash').where('kind', '=', 'anchor').where('seq', '=', firstSeq - 1).executeTakeFirst();
        if (anchor) expected = { seq: firstSeq, hash: anchor.hash };
      }
      for (const raw of rows) {
        const r = { ...raw, seq: Number(raw.seq), at: Number(raw.at) };
        if (newestTime(r) >= cutoff) break;
        if (!expected || r.seq !== expected.seq || r.prev_hash !== expected.hash || recordHash(r) !== r.hash) break;
        last = { seq: r.seq, hash: r.hash };
        expected = { seq: r.seq + 1, hash: r.hash };
      }
      if (!last) return null;
      const deleted = await trx.deleteFrom('audit_events').where('seq', '<=', last.seq).executeTakeFirst();
      const anchor = await checkpoints.signIn(trx, { kind: 'anchor', seq: last.seq, hash: last.hash }, now);
      await trx.deleteFrom('audit_checkpoints').where('seq', '<=', last.seq).where('id', '!=', anchor.id).execute();
      return { removed: Number(deleted.numDeletedRows), seq: last.seq, full: rows.length === CHUNK && last.seq === Number(rows[rows.length - 1]!.seq) };
    });
    if (!chunk) break;
    removed += chunk.removed;
    throughSeq = chunk.seq;
    if (!chunk.full) break;
  }
  return { removed, throughSeq };
}
