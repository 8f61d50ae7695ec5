import type { Kysely, Transaction } from 'kysely';
import type { AuditEventsTable, Database } from '../store/schema.js';
import { GENESIS_HASH, recordHash } from './chain.js';
import type { Checkpoints, VerifiedCheckpoint } from './checkpoints.js';

/**
 * `changed`: a record's content or hash differs from what was written (or from a signed checkpoint);
 * `removed`: a record is missing; `reordered`: records sit at other positions than written;
 * `inserted`: a record exists past the chain head; `checkpoint_invalid`: a checkpoint's signature
 * or statement does not verify.
 */
export type BrokenReason = 'changed' | 'removed' | 'reordered' | 'inserted' | 'checkpoint_invalid';

export interface BrokenRecord {
  /** Position in the chain of the first record (or checkpoint) that cannot be trusted. */
  seq: number;
  /** Id of that record or checkpoint, when one exists at that position. */
  id: string | null;
  reason: BrokenReason;
  detail: string;
}

export interface VerifyReport {
  ok: boolean;
  /** Records examined (all of them when ok). */
  checked: number;
  firstBroken?: BrokenRecord;
  /** Seq of the chain head. */
  headSeq: number;
  /** Signed checkpoints that verified. */
  checkpoints: number;
}

type Db = Kysely<Database> | Transaction<Database>;
const PAGE = 1000;

/**
 * Whether a stored integer column holds `n` as a number (PostgreSQL may hand bigints over as text):
 * not as other text ('0x2'), nor as a blob, which SQLite sorts after every number and text yet
 * `Number()` and `String()` read as the digits it holds.
 */
function storedAs(n: number, stored: unknown): boolean {
  return (typeof stored === 'number' || typeof stored === 'string' || typeof stored === 'bigint') && String(n) === String(stored);
}

/** The record that links to `hash` (its successor as written), if any. */
async function successorOf(db: Db, hash: string): Promise<{ seq: number; id: string } | undefined> {
  const row = await db.selectFrom('audit_events').select(['seq', 'id']).where('prev_hash', '=', hash).orderBy('seq').limit(1).executeTakeFirst();
  return row ? { seq: Number(row.seq), id: row.id } : undefined;
}

/**
 * Where the record that `r` links to sits: genesis (0), a signed anchor, or a stored record. Scans
 * (no index on `hash`), and only once a break is already found.
 */
async function predecessorSeq(db: Db, prevHash: string, anchors: readonly VerifiedCheckpoint[]): Promise<number | undefined> {
  if (prevHash === GENESIS_HASH) return 0;
  const anchor = anchors.find((a) => a.hash === prevHash);
  if (anchor) return anchor.seq;
  const row = await db.selectFrom('audit_events').select('seq').where('hash', '=', prevHash).orderBy('seq').limit(1).executeTakeFirst();
  return row ? Number(row.seq) : undefined;
}

/**
 * Walks the whole chain in seq order and reports the first record that was changed, removed or
 * reordered. Checks: consecutive seqs from the start (genesis, or the anchor a purge left); each
 * record's `prev_hash` is its predecessor's hash; each hash recomputes; each signed checkpoint
 * verifies and matches its record; the chain head matches the last record.
 */
export async function verifyChain(db: Db, checkpoints: Checkpoints, now: number): Promise<VerifyReport> {
  // Checkpoints before the head. AuditLog.verify reads on one snapshot (Store.snapshot), but a caller
  // with a plain connection reads while the order thread appends and the checkpoint job signs, and a
  // checkpoint only ever names a head that already was: read after the head, a checkpoint of a newer
  // head would pass for a truncated tail.
  const { valid, problems } = await checkpoints.verifyAll(db, now);
  const head = await db.selectFrom('audit_chain_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  const headSeq = Number(head.seq);
  const found: BrokenRecord[] = problems.map((p) => ({ seq: p.seq, id: p.id, reason: 'checkpoint_invalid' as const, detail: `checkpoint ${p.id}: ${p.why}` }));

  const anchors = valid.filter((c) => c.kind === 'anchor').sort((a, b) => a.seq - b.seq);
  const bySeq = new Map<number, VerifiedCheckpoint[]>();
  for (const c of valid) bySeq.set(c.seq, [...(bySeq.get(c.seq) ?? []), c]);
  const maxCheckpointSeq = valid.reduce((m, c) => Math.max(m, c.seq), 0);

  let checked = 0;
  let last: AuditEventsTable | undefined;
  let lastMatchingCheckpoint = 0;
  let expectedSeq = 0;
  let prevHash = GENESIS_HASH;
  let started = false;
  let walkBroken: BrokenRecord | undefined;

  outer: for (let after = 0; ; ) {
    const rows = await db.selectFrom('audit_events').selectAll().where('seq', '>', after).where('seq', '<=', headSeq).orderBy('seq').limit(PAGE).execute();
    for (const raw of rows) {
      const r = { ...raw, seq: Number(raw.seq), at: Number(raw.at) };
      if (!started) {
        started = true;
        // The chain starts at genesis, or right after the last record a purge removed.
        const anchor = [...anchors].reverse().find((a) => a.seq < r.seq);
        const exact = anchors.find((a) => a.seq === r.seq - 1);
        if (r.seq === 1 || exact) {
          expectedSeq = r.seq;
          prevHash = r.seq === 1 ? GENESIS_HASH : exact!.hash;
        } else {
          expectedSeq = (anchor?.seq ?? 0) + 1;
          prevHash = anchor?.hash ?? GENESIS_HASH;
        }
      }
      if (r.seq !== expectedSeq) {
        // SQLite keeps a fraction in an integer column (seq 2.5 sorts between 2 and 3): no append
        // wrote it there.
        if (!Number.isSafeInteger(r.seq)) {
          walkBroken = { seq: expectedSeq, id: r.id, reason: 'inserted', detail: `record ${r.id} has seq ${JSON.stringify(raw.seq)}, which is not a position in the chain` };
          break outer;
        }
        const moved = await successorOf(db, prevHash);
        walkBroken = moved
          ? { seq: expectedSeq, id: moved.id, reason: 'reordered', detail: `the record written at seq ${expectedSeq} now sits at seq ${moved.seq}` }
          : { seq: expectedSeq, id: null, reason: 'removed', detail: `record ${expectedSeq} is missing (next present: ${r.seq})` };
        break outer;
      }
      // The hash covers the numbers; the stored form must be that number too. SQLite keeps text such
      // as '0x18c…' in an integer column: it hashes like the time it reads as, yet sorts after every
      // number, so time-filtered views would pass the record by. So does a blob of the digits, which
      // Number() and String() read as the number itself.
      const selfConsistent = recordHash(r) === r.hash && storedAs(r.at, raw.at) && storedAs(r.seq, raw.seq);
      if (r.prev_hash !== prevHash) {
        const moved = await successorOf(db, prevHash);
        // Records slipped in before `r`, which was moved up to make room: it still links to the
        // record it was written after, and its hash still holds at the seq it was written at.
        const before = moved ? undefined : await predecessorSeq(db, r.prev_hash, anchors);
        if (moved && moved.seq !== r.seq) {
          walkBroken = { seq: r.seq, id: r.id, reason: 'reordered', detail: `record ${r.seq} does not follow record ${r.seq - 1}; the record written after it now sits at seq ${moved.seq}` };
        } else if (before !== undefined && before < r.seq - 1 && recordHash({ ...r, seq: before + 1 }) === r.hash) {
          const intruder = await db.selectFrom('audit_events').select('id').where('seq', '=', before + 1).executeTakeFirst();
          walkBroken = { seq: before + 1, id: intruder?.id ?? null, reason: 'inserted', detail: `records ${before + 1}…${r.seq - 1} were inserted: record ${r.id}, written at seq ${before + 1}, now sits at seq ${r.seq}` };
        } else if (selfConsistent && last) {
          walkBroken = { seq: last.seq, id: last.id, reason: 'changed', detail: `record ${last.seq} no longer has the hash record ${r.seq} links to: it was changed and re-hashed (or that link was)` };
        } else {
          walkBroken = { seq: r.seq, id: r.id, reason: 'changed', detail: `record ${r.seq} does not link to its predecessor` };
        }
        break outer;
      }
      if (!selfConsistent) {
        walkBroken = { seq: r.seq, id: r.id, reason: 'changed', detail: `record ${r.seq} does not match its hash` };
        break outer;
      }
      for (const c of bySeq.get(r.seq) ?? []) {
        if (c.hash !== r.hash) {
          walkBroken = { seq: r.seq, id: r.id, reason: 'changed', detail: `record ${r.seq} differs from signed checkpoint ${c.id}; records after seq ${lastMatchingCheckpoint} were rewritten` };
          break outer;
        }
        lastMatchingCheckpoint = r.seq;
      }
      checked += 1;
      last = r;
      prevHash = r.hash;
      expectedSeq = r.seq + 1;
    }
    if (rows.length < PAGE) break;
    after = Number(rows[rows.length - 1]!.seq);
  }

  // A record below seq 1 is never walked (the chain starts there), yet the auditor's views show it
  // like any other: it was inserted.
  const lowest = await db.selectFrom('audit_events').select(['seq', 'id']).orderBy('seq').limit(1).executeTakeFirst();
  if (lowest && !(Number(lowest.seq) >= 1)) found.push({ seq: Number(lowest.seq), id: lowest.id, reason: 'inserted', detail: `record ${lowest.id} sits at seq ${String(lowest.seq)}, before the start of the chain` });

  if (walkBroken) found.push(walkBroken);
  else {
    // The tail: the head names the last record; no signed checkpoint lies beyond it.
    const endSeq = last ? last.seq : anchors.length ? anchors[anchors.length - 1]!.seq : 0;
    const endHash = last ? last.hash : anchors.length ? anchors[anchors.length - 1]!.hash : GENESIS_HASH;
    if (headSeq > endSeq) found.push({ seq: endSeq + 1, id: null, reason: 'removed', detail: `records ${endSeq + 1}…${headSeq} are missing from the end of the chain` });
    else if (headSeq === endSeq && head.hash !== endHash) found.push({ seq: endSeq, id: last?.id ?? null, reason: 'changed', detail: `record ${endSeq} differs from the chain head` });
    if (maxCheckpointSeq > endSeq) found.push({ seq: endSeq + 1, id: null, reason: 'removed', detail: `a signed checkpoint covers seq ${maxCheckpointSeq}, past the last record` });
    // Read the records' end before the head again: a concurrent append only moves the head further.
    const highest = await db.selectFrom('audit_events').select(['seq', 'id']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    const headNow = await db.selectFrom('audit_chain_head').select('seq').where('id', '=', 1).executeTakeFirstOrThrow();
    const maxSeq = highest === undefined ? 0 : Number(highest.seq);
    // SQLite keeps whatever is stored in the column, and sorts text after every number: a seq that is
    // not a whole number is past the head too (and a comparison with NaN would pass it by), and so is
    // text that merely reads as one ('0x2', which SQLite keeps as text and the views show as seq 2).
    if (!Number.isSafeInteger(maxSeq) || (highest !== undefined && !storedAs(maxSeq, highest.seq))) {
      found.push({ seq: Number(headNow.seq) + 1, id: highest!.id, reason: 'inserted', detail: `record ${highest!.id} has seq ${JSON.stringify(highest!.seq)}, which is not a position in the chain` });
    } else if (maxSeq > Number(headNow.seq)) {
      found.push({ seq: Number(headNow.seq) + 1, id: null, reason: 'inserted', detail: `records past the chain head (up to seq ${maxSeq}) were not appended by the log` });
    }
  }

  found.sort((a, b) => a.seq - b.seq || (a.reason === 'checkpoint_invalid' ? 1 : 0) - (b.reason === 'checkpoint_invalid' ? 1 : 0));
  const firstBroken = found[0];
  return { ok: firstBroken === undefined, checked, ...(firstBroken ? { firstBroken } : {}), headSeq, checkpoints: valid.length };
}
