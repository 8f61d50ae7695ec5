import { hash } from 'node:crypto';
import type { Transaction } from 'kysely';
import { insertAll } from '../store/bulk.js';
import type { Dialect } from '../store/db.js';
import type { AuditEventsTable, Database } from '../store/schema.js';
import type { AuditRef } from './events.js';

/** `prev_hash` of the very first record. */
export const GENESIS_HASH = '0'.repeat(64);

/** A record ready to append: everything stored except its place in the chain. */
export type SealedRecord = Omit<AuditEventsTable, 'seq' | 'prev_hash' | 'hash'>;

/**
 * SHA-256 (hex) over the canonical serialization of a record's stored fields: a JSON array, in
 * this fixed order, of a version tag and every column except `hash` itself. Ciphertexts are
 * hashed as stored, so verification needs no decryption key, and `seq` and `prev_hash` are
 * included, so moving a record or cutting a link changes the hash.
 */
export function recordHash(r: Omit<AuditEventsTable, 'hash'>): string {
  const canonical = JSON.stringify([
    'moondraft.audit.v1',
    r.seq,
    r.id,
    r.at,
    r.type,
    r.category,
    r.account_id,
    r.actor_id,
    r.outcome,
    r.details_enc,
    r.ip_enc,
    r.user_agent_enc,
    r.prev_hash,
  ]);
  return hash('sha256', canonical, 'hex');
}

export interface ChainHead {
  seq: number;
  hash: string;
}

/**
 * Locks the chain head for the rest of `trx` and returns it. Every append takes this lock, so
 * appends are totally ordered even with many server processes on one PostgreSQL (`FOR UPDATE`
 * on the single head row). SQLite has one writer, and its transactions begin IMMEDIATE (store/db.ts):
 * `trx` holds the database write lock from its start, so a concurrent CLI process cannot fork the chain.
 */
export async function lockHead(trx: Transaction<Database>, dialect: Dialect): Promise<ChainHead> {
  let query = trx.selectFrom('audit_chain_head').select(['seq', 'hash']).where('id', '=', 1);
  if (dialect === 'postgres') query = query.forUpdate();
  const head = await query.executeTakeFirst();
  if (!head) throw new Error('audit chain head is missing (migration 0050_audit not applied?)');
  return { seq: Number(head.seq), hash: head.hash };
}

/** Records hashed and inserted per statement; a long append yields to the event loop between chunks. */
const INSERT_CHUNK = 64;

/** Lets other work run (requests, timers) in the middle of a long append; the transaction and its head lock stay held. */
export const breathe = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Appends sealed records, in the given order, at the end of the chain inside `trx`. The head
 * lock is held until `trx` ends, so callers append as the last step of their transaction.
 * `mayYield` (asked between chunks of 64) lets a long append give the event loop back in between,
 * so requests keep being answered while a batch of buffered events is written.
 */
export async function appendIn(trx: Transaction<Database>, dialect: Dialect, records: readonly SealedRecord[], now: number, mayYield?: () => boolean): Promise<AuditRef[]> {
  if (records.length === 0) return [];
  const head = await lockHead(trx, dialect);
  let seq = head.seq;
  let prev = head.hash;
  const refs: AuditRef[] = [];
  for (let i = 0; i < records.length; i += INSERT_CHUNK) {
    if (i > 0 && mayYield?.()) await breathe();
    const rows: AuditEventsTable[] = records.slice(i, i + INSERT_CHUNK).map((r) => {
      seq += 1;
      const unhashed = { ...r, seq, prev_hash: prev };
      const hash = recordHash(unhashed);
      prev = hash;
      return { ...unhashed, hash };
    });
    await insertAll(trx, 'audit_events', rows, INSERT_CHUNK);
    for (const r of rows) refs.push({ id: r.id, seq: r.seq });
  }
  await trx.updateTable('audit_chain_head').set({ seq, hash: prev, updated_at: now }).where('id', '=', 1).execute();
  return refs;
}
