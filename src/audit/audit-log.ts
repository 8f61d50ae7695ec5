import type { ExpressionBuilder, Transaction } from 'kysely';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock } from '../lib/clock.js';
import type { Keyring } from '../security/crypto/keyring.js';
import type { SecurityEvents } from '../security/events/index.js';
import type { SigningKeys } from '../security/identity/signing-keys.js';
import type { Store } from '../store/db.js';
import type { Database } from '../store/schema.js';
import { BatchBuffer } from './buffer.js';
import { REFUSAL_WINDOW_MS, RefusalTally, type FloodRefusal } from './refusals.js';
import { appendIn, breathe, lockHead, type SealedRecord } from './chain.js';
import { Checkpoints, type VerifiedCheckpoint } from './checkpoints.js';
import type { AuditCategory, AuditEvent, AuditRef } from './events.js';
import { purgeBefore, type PurgeResult } from './retention.js';
import { ACCESS_BATCH_MAX, ACCESS_BATCH_SPAN_MS, expandRecord, openRecord, sealAccessBatch, sealEvent, type AccessRequestEvent, type AuditRecordView } from './seal.js';
import { auditEventFor } from './security-events.js';
import { verifyChain, type VerifyReport } from './verify.js';

/**
 * Records about an account: of it, or done by it to another. The second half asks only for an
 * actor other than the account, which is all that `audit_events_actor_seq` holds (migration 0080):
 * an account acting on itself is found by the first half.
 */
export function accountFilter(eb: ExpressionBuilder<Database, 'audit_events'>, account: string) {
  return eb.or([eb('account_id', '=', account), eb.and([eb('actor_id', '=', account), eb('actor_id', 'is distinct from', eb.ref('account_id'))])]);
}

export interface AuditOptions {
  retentionDays: number;
  checkpointIntervalSec: number;
  flushIntervalMs: number;
  batchSize: number;
  bufferCapacity: number;
  /** How often the retention purge runs (default hourly; it also runs shortly after start). */
  purgeIntervalMs?: number;
}

export interface AuditDeps {
  store: Store;
  keyring: Keyring;
  signingKeys: SigningKeys;
  clock: Clock;
  log: Logger;
  /** Where the audit metrics go (the server's Prometheus registry). */
  registry?: Registry;
  options: AuditOptions;
}

/**
 * Where the next page of `list` starts: the record `seq` (inclusive), skipping the first `skip`
 * of its views (an `access.batch` record shows one view per request, and a page may end inside one).
 */
export interface AuditCursor {
  seq: number;
  skip: number;
}

/** Filters of the auditor's views; every one matches clear columns. */
export interface AuditFilter {
  type?: string | undefined;
  category?: AuditCategory | undefined;
  /** Matches the account an event concerns or the account that performed it. */
  accountId?: string | undefined;
  /** Epoch ms, inclusive. */
  from?: number | undefined;
  /** Epoch ms, exclusive. */
  to?: number | undefined;
}

const DAY_MS = 86_400_000;
const EXPORT_PAGE = 500;
/** Buffered events sealed between two yields to the event loop. */
const SEAL_CHUNK = 64;
/** Most records one group-commit transaction of record() carries. */
const GROUP_MAX = 500;

/**
 * The audit log: the one module every feature writes through (`services.audit`).
 *
 * - `recordIn(trx, event)`: trading and admin events, in the transaction of the change they
 *   record (committed or rolled back with it). Call it last in the transaction: it holds the chain
 *   head lock until the transaction ends.
 * - `record(event)`: an event that belongs to no transaction; resolves once it is stored.
 * - `enqueue(event)`: high-volume events (API access, attacker-triggerable failures): buffered and
 *   written in batches, and on graceful shutdown; never blocks or throws.
 *
 * Every record is hash-chained and its sensitive fields are encrypted; periodic checkpoints are
 * signed with the server's signing key; `verify()` reports the first broken record; a scheduled
 * purge applies the retention period.
 *
 * @example
 *   await services.store.transaction(async (trx) => {
 *     const order = await insertOrder(trx, input);
 *     await services.audit.recordIn(trx, {
 *       type: 'trading.order.placed', accountId: order.accountId, requestId: request.id,
 *       details: { orderId: order.id, market: order.market, side: order.side, orderType: order.type, quantity: order.quantity },
 *     });
 *   });
 */
export class AuditLog {
  readonly checkpoints: Checkpoints;
  private readonly buffer: BatchBuffer<AuditEvent>;
  /** Flood refusals counted per network, turned into `access.refused` events every REFUSAL_WINDOW_MS. */
  private readonly refusals = new RefusalTally();
  private readonly timers: NodeJS.Timeout[] = [];
  private exclusiveChain: Promise<unknown> = Promise.resolve();
  private unsubscribe: (() => void) | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly groupQueue: { sealed: SealedRecord; resolve: (ref: AuditRef) => void; reject: (err: unknown) => void }[] = [];
  /** The group-commit writer while it runs (close() waits for it). */
  private groupWriting: Promise<void> | undefined;
  private closed = false;
  private readonly written: Counter<'category'> | undefined;
  private readonly droppedCounter: Counter | undefined;

  constructor(private readonly deps: AuditDeps) {
    this.checkpoints = new Checkpoints(deps.signingKeys, (c) => deps.log.info({ auditCheckpoint: c }, 'audit checkpoint signed'));
    const { options } = deps;
    this.buffer = new BatchBuffer<AuditEvent>({
      batchSize: options.batchSize,
      capacity: options.bufferCapacity,
      flushIntervalMs: options.flushIntervalMs,
      write: (batch, dropped) => this.writeBatch(batch, dropped),
      onError: (err) => deps.log.error({ err, buffered: this.buffer.size }, 'audit: writing buffered events failed (kept for the next attempt)'),
      onDropped: (n) => this.droppedCounter?.inc(n),
    });
    if (deps.registry) {
      this.written = new Counter({ name: 'moondraft_audit_records_total', help: 'Audit records stored, by category: records, not events (one access.batch record holds many access events of one account)', labelNames: ['category'] as const, registers: [deps.registry] });
      this.droppedCounter = new Counter({ name: 'moondraft_audit_dropped_total', help: 'Audit events lost from the trail (each gap is recorded there as audit.events_dropped): refused by a full buffer on arrival, lost from a failed batch that no longer fit back, or skipped because they could not be sealed', registers: [deps.registry] });
      const buffer = this.buffer;
      new Gauge({ name: 'moondraft_audit_buffered', help: 'Audit events waiting in the buffer', registers: [deps.registry], collect() { this.set(buffer.size); } });
    }
  }

  private seal(event: AuditEvent): SealedRecord {
    return sealEvent(event, this.deps.keyring, this.deps.clock.now());
  }

  private counted(records: readonly SealedRecord[]): void {
    if (!this.written) return;
    for (const r of records) this.written.inc({ category: r.category });
  }

  /** Counts records another thread of this server appended (the order thread's trading records). */
  countWritten(category: AuditCategory, n: number): void {
    this.written?.inc({ category }, n);
  }

  /** Appends `event` inside the caller's transaction (the same one as the change it records). */
  async recordIn(trx: Transaction<Database>, event: AuditEvent): Promise<AuditRef> {
    const [ref] = await this.recordManyIn(trx, [event]);
    return ref!;
  }

  /** Appends several events, in order, inside the caller's transaction. */
  async recordManyIn(trx: Transaction<Database>, events: readonly AuditEvent[]): Promise<AuditRef[]> {
    const sealed = events.map((e) => this.seal(e));
    const refs = await appendIn(trx, this.deps.store.dialect, sealed, this.deps.clock.now());
    this.counted(sealed);
    return refs;
  }

  /**
   * Appends `event` outside any caller transaction; resolves once it is stored. Concurrent calls
   * share one transaction (group commit): one connection and one head lock for the lot.
   */
  record(event: AuditEvent): Promise<AuditRef> {
    let sealed: SealedRecord;
    try {
      sealed = this.seal(event);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<AuditRef>((resolve, reject) => {
      this.groupQueue.push({ sealed, resolve, reject });
      this.groupWriting ??= this.writeGroups();
    });
  }

  private async writeGroups(): Promise<void> {
    try {
      while (this.groupQueue.length > 0) {
        const group = this.groupQueue.splice(0, GROUP_MAX);
        const records = group.map((g) => g.sealed);
        try {
          const refs = await this.deps.store.transaction((trx) => appendIn(trx, this.deps.store.dialect, records, this.deps.clock.now()));
          this.counted(records);
          group.forEach((g, i) => g.resolve(refs[i]!));
        } catch (err) {
          for (const g of group) g.reject(err);
        }
      }
    } finally {
      this.groupWriting = undefined;
    }
  }

  /**
   * Buffers `event` for the next batch (API access and other high-volume events). Only the time is
   * taken here; redaction, encryption and hashing happen when the batch is written, off the request.
   */
  enqueue(event: AuditEvent): void {
    const timed = event.at === undefined ? { ...event, at: this.deps.clock.now() } : event;
    this.buffer.push(timed);
  }

  /**
   * Counts a refusal a flood is made of (a blocked address's request, an anonymous client's 429)
   * against its client network, instead of one access entry per request: see RefusalTally. Never
   * blocks or throws.
   */
  tallyRefusal(network: string | null, refusal: FloodRefusal): void {
    this.refusals.add(network, refusal, this.deps.clock.now());
  }

  /**
   * Hands the tallied refusals to the buffer, one `access.refused` event per network and refusal,
   * as many as it has room for: a tally the buffer cannot take stays counted for the next window
   * (it is bounded already), where a dropped event would lose its whole count.
   */
  private drainRefusals(): void {
    if (this.refusals.size === 0) return;
    const room = this.deps.options.bufferCapacity - this.buffer.size;
    if (room <= 0) return;
    for (const event of this.refusals.drain(room)) this.enqueue(event);
  }

  /** Drains every tally into the buffer, writing batches to make room; false when a write failed. */
  private async drainAllRefusals(): Promise<boolean> {
    for (;;) {
      this.drainRefusals();
      if (this.refusals.size === 0) return true;
      try {
        await this.buffer.flush();
      } catch (err) {
        this.deps.log.error({ err, tallies: this.refusals.size }, 'audit: could not make room for the refusal tallies');
        return false;
      }
    }
  }

  /** Events waiting in the buffer. */
  get buffered(): number {
    return this.buffer.size;
  }

  /** Writes one batch of buffered events now. */
  flush(): Promise<void> {
    return this.buffer.flush();
  }

  private async writeBatch(batch: AuditEvent[], dropped: number): Promise<void> {
    const records: SealedRecord[] = [];
    // Events that could not be sealed are skipped (one malformed event must not block the batch
    // behind it forever), but counted: the gap shows in the log like a full buffer's.
    let unsealable = 0;
    // Sealing and appending a full batch at once holds the event loop for tens of ms, so the work
    // gives way to requests every SEAL_CHUNK records, but only while the writer keeps up: with a
    // backlog it runs straight through, and requests wait for it (they must never outrun the audit
    // trail until the buffer is full and events are dropped).
    const mayYield = () => this.buffer.size < this.deps.options.batchSize * 2;
    // API access events are sealed per account, many to a record (see sealAccessBatch); a group
    // is closed when it is full or would span more than ACCESS_BATCH_SPAN_MS.
    const groups = new Map<string | null, AccessRequestEvent[]>();
    const sealGroup = (accountId: string | null, events: AccessRequestEvent[]) => {
      try {
        records.push(sealAccessBatch(accountId, events, this.deps.keyring, this.deps.clock.now()));
      } catch (err) {
        unsealable += events.length;
        this.deps.log.error({ err, events: events.length }, 'audit: could not seal a batch of access events; skipped');
      }
    };
    let sealed = 0;
    for (const e of batch) {
      if (e.type === 'access.request') {
        const accountId = e.accountId ?? null;
        const group = groups.get(accountId);
        if (group && (group.length >= ACCESS_BATCH_MAX || (e.at ?? 0) - (group[0]!.at ?? 0) >= ACCESS_BATCH_SPAN_MS || (e.at ?? 0) < (group[0]!.at ?? 0))) {
          sealGroup(accountId, group);
          groups.set(accountId, [e]);
        } else if (group) group.push(e);
        else groups.set(accountId, [e]);
        continue;
      }
      if (sealed > 0 && sealed % SEAL_CHUNK === 0 && mayYield()) await breathe();
      sealed += 1;
      try {
        records.push(this.seal(e));
      } catch (err) {
        unsealable += 1;
        this.deps.log.error({ err, type: e.type }, 'audit: could not seal a buffered event; skipped');
      }
    }
    for (const [accountId, events] of groups) sealGroup(accountId, events);
    if (dropped + unsealable > 0) {
      records.unshift(this.seal({ type: 'audit.events_dropped', outcome: 'failure', details: { dropped: dropped + unsealable, ...(unsealable > 0 ? { unsealable } : {}) } }));
    }
    await this.deps.store.transaction((trx) => appendIn(trx, this.deps.store.dialect, records, this.deps.clock.now(), mayYield));
    this.counted(records);
    // Counted once the trail records them (a failed write puts the batch back, sealed again on the
    // retry): the events the buffer dropped were counted as it dropped them.
    if (unsealable > 0) this.droppedCounter?.inc(unsealable);
  }

  /** Records every security event (sign-in, refresh, revocation, role change, keys, blocks…). */
  subscribeTo(events: SecurityEvents): void {
    this.unsubscribe?.();
    this.unsubscribe = events.subscribe(async (e) => {
      const mapped = auditEventFor(e);
      if (!mapped) return;
      if (mapped.buffered) return this.enqueue(mapped.event);
      // A write that fails (the store briefly away) hands the event to the buffer, which keeps it
      // and tries again with each batch: written late rather than lost. Should the failure have
      // come at COMMIT and the write have taken effect, it is recorded twice: better than never.
      const write = this.record(mapped.event).then(
        () => undefined,
        (err: unknown) => {
          this.deps.log.error({ err, type: mapped.event.type }, 'audit: writing a security event failed; it goes to the buffer');
          this.enqueue(mapped.event);
        },
      );
      this.inflight.add(write);
      try {
        await write;
      } finally {
        this.inflight.delete(write);
      }
    });
  }

  /** Resolves when every security event received so far is stored (buffered ones included). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    await this.drainAllRefusals();
    // A flush runs after the write in progress, so this also waits for a batch already taken out of the buffer.
    do await this.buffer.flush();
    while (this.buffer.size > 0 || this.buffer.droppedSinceLastWrite > 0);
  }

  /** Runs `fn` after every verification or purge started before it (in this process). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.exclusiveChain.then(fn, fn);
    this.exclusiveChain = run.catch(() => undefined);
    return run;
  }

  /**
   * Signs a checkpoint of the chain head, unless a checkpoint signed with the active key already
   * states it (its signature checked). Returns the new checkpoint, or null when none was needed.
   */
  async checkpoint(): Promise<VerifiedCheckpoint | null> {
    const now = this.deps.clock.now();
    return this.deps.store.transaction(async (trx) => {
      const head = await lockHead(trx, this.deps.store.dialect);
      if (head.seq === 0) return null;
      if (await this.checkpoints.covered(trx, head, now)) return null;
      return this.checkpoints.signIn(trx, { kind: 'periodic', seq: head.seq, hash: head.hash }, now);
    });
  }

  /**
   * Verifies the whole chain and its checkpoints on one snapshot of the store: a purge or appends
   * by another process meanwhile (the server's, while the CLI verifies) are not taken for removed
   * or inserted records.
   */
  verify(): Promise<VerifyReport> {
    return this.exclusive(async () => {
      const now = this.deps.clock.now();
      return this.deps.store.snapshot((db) => verifyChain(db, this.checkpoints, now));
    });
  }

  /** Removes records older than the retention period, leaving a signed anchor; records the purge. */
  purge(): Promise<PurgeResult> {
    return this.exclusive(async () => {
      const now = this.deps.clock.now();
      const cutoff = now - this.deps.options.retentionDays * DAY_MS;
      const result = await purgeBefore(this.deps.store, this.checkpoints, cutoff, now);
      if (result.throughSeq !== null) {
        await this.record({ type: 'audit.purged', details: { cutoff, removed: result.removed, throughSeq: result.throughSeq } });
        this.deps.log.info({ removed: result.removed, throughSeq: result.throughSeq }, 'audit: retention purge');
      }
      return result;
    });
  }

  /**
   * Stored records that may hold views matching `filter`. Access events are stored in
   * `access.batch` records whose `at` is their first entry's, so the time range reaches back by
   * ACCESS_BATCH_SPAN_MS; `views` then applies the filter to each view exactly.
   */
  private filtered(filter: AuditFilter) {
    let q = this.deps.store.db.selectFrom('audit_events').selectAll();
    if (filter.type === 'access.request') q = q.where('type', 'in', ['access.request', 'access.batch']);
    else if (filter.type !== undefined) q = q.where('type', '=', filter.type);
    if (filter.category !== undefined) q = q.where('category', '=', filter.category);
    if (filter.accountId !== undefined) {
      const account = filter.accountId;
      q = q.where((eb) => accountFilter(eb, account));
    }
    if (filter.from !== undefined) q = q.where('at', '>=', filter.from - ACCESS_BATCH_SPAN_MS);
    if (filter.to !== undefined) q = q.where('at', '<', filter.to);
    return q;
  }

  /** The auditor's views of one stored record (several for an access batch), oldest first, filtered exactly. */
  private views(row: Parameters<typeof openRecord>[0], filter: AuditFilter): AuditRecordView[] {
    return expandRecord(openRecord(row, this.deps.keyring)).filter(
      (v) =>
        (filter.type === undefined || v.type === filter.type || (v.type === 'access.batch' && filter.type === 'access.request')) &&
        (filter.from === undefined || v.at >= filter.from) &&
        (filter.to === undefined || v.at < filter.to),
    );
  }

  /**
   * One page of matching views, newest first, and where the next page starts (null after the last).
   * Without `cursor` the page starts at the newest record.
   */
  async list(filter: AuditFilter, page: { cursor?: AuditCursor | undefined; limit: number }): Promise<{ records: AuditRecordView[]; next: AuditCursor | null }> {
    const records: AuditRecordView[] = [];
    let upTo = page.cursor?.seq;
    for (;;) {
      let q = this.filtered(filter);
      if (upTo !== undefined) q = q.where('seq', '<=', upTo);
      const rows = await q.orderBy('seq', 'desc').limit(page.limit + 1).execute();
      for (const row of rows) {
        const seq = Number(row.seq);
        const views = this.views(row, filter).reverse();
        for (let i = seq === page.cursor?.seq ? page.cursor.skip : 0; i < views.length; i++) {
          if (records.length === page.limit) return { records, next: { seq, skip: i } };
          records.push(views[i]!);
        }
      }
      if (rows.length <= page.limit) return { records, next: null };
      upTo = Number(rows[rows.length - 1]!.seq) - 1;
    }
  }

  /** Every matching view, oldest first, decrypted (for the NDJSON export). */
  async *export(filter: AuditFilter): AsyncGenerator<AuditRecordView> {
    let after = 0;
    for (;;) {
      const rows = await this.filtered(filter).where('seq', '>', after).orderBy('seq').limit(EXPORT_PAGE).execute();
      for (const r of rows) yield* this.views(r, filter);
      if (rows.length < EXPORT_PAGE) return;
      after = Number(rows[rows.length - 1]!.seq);
    }
  }

  /** Starts the batch timer, the checkpoint job and the retention job (all unref'd). */
  start(): void {
    if (this.closed) return;
    this.buffer.start();
    const job = (name: string, fn: () => Promise<unknown>) => () => {
      fn().catch((err) => this.deps.log.error({ err }, `audit: ${name} failed`));
    };
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(REFUSAL_WINDOW_MS, () => this.drainRefusals());
    every(this.deps.options.checkpointIntervalSec * 1000, job('checkpoint', () => this.checkpoint()));
    const purgeMs = this.deps.options.purgeIntervalMs ?? 3_600_000;
    every(purgeMs, job('retention purge', () => this.purge()));
    // Also soon after start, so a server restarted more often than hourly still purges.
    const first = setTimeout(job('retention purge', () => this.purge()), Math.min(purgeMs, 10_000));
    first.unref();
    this.timers.push(first);
  }

  /** Graceful shutdown: stops the jobs, writes every buffered event, signs a last checkpoint. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    for (const t of this.timers) clearTimeout(t);
    await Promise.allSettled([...this.inflight]);
    // Records appended on their own (group commit) that are still being written: before the last
    // checkpoint, so that it covers them.
    for (let w = this.groupWriting; w; w = this.groupWriting === w ? undefined : this.groupWriting) await w;
    await this.drainAllRefusals();
    const { unwritten } = await this.buffer.close();
    if (unwritten > 0 || this.refusals.size > 0) this.deps.log.error({ unwritten, refusalTallies: this.refusals.size }, 'audit: buffered events could not be written before shutdown');
    await this.exclusiveChain;
    try {
      await this.checkpoint();
    } catch (err) {
      this.deps.log.error({ err }, 'audit: final checkpoint failed');
    }
  }
}
