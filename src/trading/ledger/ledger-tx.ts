import type { Transaction } from 'kysely';
import { fail, ok, type Result } from '../../errors/registry.js';
import { newId, sortableCounter } from '../../lib/ids.js';
import { insertAll } from '../../store/bulk.js';
import type { Database } from '../../store/schema.js';
import { readMinor } from '../money.js';
import { chunks } from '../retry.js';
import { upsertRows } from '../upsert.js';
import { mayGoNegative } from './owners.js';

/**
 * One line of a journal entry. Positive amounts credit the owner, negative debit. Without `hold`
 * the line moves the owner's available balance; with `hold` it moves the held balance AND that
 * hold by the same amount (the hold must belong to the same owner and asset).
 */
export interface Line {
  owner: string;
  asset: string;
  amount: bigint;
  hold?: string;
}

export interface Balance {
  available: bigint;
  held: bigint;
}

export interface HoldView {
  id: string;
  owner: string;
  asset: string;
  amount: bigint;
  kind: string;
  status: 'active' | 'closed';
}

interface BalanceState extends Balance {
  owner: string;
  asset: string;
  /** As read (null: no row yet). */
  orig: Balance | null;
  version: number;
}

interface HoldState extends HoldView {
  createdAt: number;
  orig: { amount: bigint; status: 'active' | 'closed' } | null;
  version: number;
}

const keyOf = (owner: string, asset: string) => `${owner}\u0001${asset}`;

/**
 * The ledger's unit of work inside one store transaction. It reads balances and holds once,
 * applies journal entries in memory (checking every invariant before an entry is accepted), and
 * writes everything in `flush`: entries and postings appended, holds and balances updated with an
 * optimistic check against the values it read, in one global key order so that concurrent
 * transactions never deadlock. A failed check throws ConcurrentUpdateError: roll back and retry.
 *
 * Business refusals (`insufficient_funds`) are results and change nothing.
 */
export class LedgerTx {
  private readonly balances = new Map<string, BalanceState>();
  private readonly loadedOwners = new Set<string>();
  private readonly holds = new Map<string, HoldState>();
  private readonly missingHolds = new Set<string>();
  private readonly entries: { id: string; kind: string; ref_id: string | null; created_at: number }[] = [];
  private readonly postings: { entry_id: string; line: number; owner: string; asset: string; bucket: 'available' | 'held'; amount: string }[] = [];
  private written = false;
  /** Entry ids are this unit's id plus a counter: one random draw per transaction, not per entry. */
  private readonly idBase: string;
  private entryCount = 0;

  constructor(
    readonly trx: Transaction<Database>,
    readonly now: number,
    /**
     * Lock the balance rows it reads (PostgreSQL `FOR UPDATE`, in key order) until the transaction
     * ends, so that the optimistic check in `flush` cannot fail. For transactions that do work
     * between reading a balance and writing it (the faucet, withdrawals, token launches): without
     * the lock, an account whose orders commit more often than that work takes loses every retry.
     */
    private readonly lockReads = false,
  ) {
    this.idBase = newId('jrn', now);
  }

  /** Loads every balance row of these owners that is not loaded yet (one query). */
  async loadOwners(owners: Iterable<string>): Promise<void> {
    const missing = [...new Set(owners)].filter((o) => !this.loadedOwners.has(o));
    if (missing.length === 0) return;
    for (const part of chunks(missing.sort(), 500)) {
      let q = this.trx.selectFrom('balances').select(['owner', 'asset', 'available', 'held', 'version']).where('owner', 'in', part);
      if (this.lockReads) q = q.orderBy('owner').orderBy('asset').forUpdate();
      const rows = await q.execute();
      for (const r of rows) {
        const available = readMinor(r.available);
        const held = readMinor(r.held);
        const k = keyOf(r.owner, r.asset);
        if (!this.balances.has(k)) this.balances.set(k, { owner: r.owner, asset: r.asset, available, held, orig: { available, held }, version: Number(r.version) });
      }
      for (const o of part) this.loadedOwners.add(o);
    }
  }

  /** Loads holds by id (one query for those not loaded yet). */
  async loadHolds(ids: Iterable<string>): Promise<void> {
    const missing = [...new Set(ids)].filter((id) => !this.holds.has(id) && !this.missingHolds.has(id));
    if (missing.length === 0) return;
    for (const part of chunks(missing, 500)) {
      const rows = await this.trx.selectFrom('holds').selectAll().where('id', 'in', part).execute();
      for (const r of rows) {
        const amount = readMinor(r.amount);
        this.holds.set(r.id, { id: r.id, owner: r.owner, asset: r.asset, amount, kind: r.kind, status: r.status, createdAt: Number(r.created_at), orig: { amount, status: r.status }, version: Number(r.version) });
      }
      for (const id of part) if (!this.holds.has(id)) this.missingHolds.add(id);
    }
  }

  private state(owner: string, asset: string): BalanceState {
    const k = keyOf(owner, asset);
    let s = this.balances.get(k);
    if (!s) {
      if (!this.loadedOwners.has(owner)) throw new Error(`ledger: balances of ${owner} used before loading`);
      s = { owner, asset, available: 0n, held: 0n, orig: null, version: 0 };
      this.balances.set(k, s);
    }
    return s;
  }

  /**
   * With locking reads (PostgreSQL): makes sure the owner's row of `asset` exists (a zero row, if
   * not), then reads the owner's balances, so that the row is locked with the others. Call it first
   * in a transaction that may create that row (a credit of an asset the owner may not hold yet).
   * Else it would hold the owner's other rows (locked when read) and insert this one last, while an
   * order batch inserts the same row first (key order) and then waits for one of those others: a
   * deadlock, broken by PostgreSQL only after deadlock_timeout. Without locking reads, `balance`.
   */
  async lockBalance(owner: string, asset: string): Promise<Balance> {
    if (this.lockReads && !this.loadedOwners.has(owner)) {
      await this.trx
        .insertInto('balances')
        .values({ owner, asset, available: '0', held: '0', updated_at: this.now, version: 0 })
        .onConflict((oc) => oc.columns(['owner', 'asset']).doNothing())
        .execute();
    }
    return this.balance(owner, asset);
  }

  /** The owner's balance of an asset as this transaction sees it (zero when it has none). */
  async balance(owner: string, asset: string): Promise<Balance> {
    await this.loadOwners([owner]);
    const s = this.state(owner, asset);
    return { available: s.available, held: s.held };
  }

  async hold(id: string): Promise<HoldView | undefined> {
    await this.loadHolds([id]);
    const h = this.holds.get(id);
    return h ? { id: h.id, owner: h.owner, asset: h.asset, amount: h.amount, kind: h.kind, status: h.status } : undefined;
  }

  /**
   * Posts one balanced journal entry. Throws (a bug, not a business outcome) when the lines do not
   * sum to zero per asset or name a hold that does not fit; returns `insufficient_funds` (and
   * changes nothing) when an owner that may not go negative would.
   */
  async post(kind: string, refId: string | null, lines: readonly Line[]): Promise<Result<string, 'insufficient_funds'>> {
    if (this.written) throw new Error('ledger: post after flush');
    const sums = new Map<string, bigint>();
    for (const l of lines) sums.set(l.asset, (sums.get(l.asset) ?? 0n) + l.amount);
    for (const [asset, sum] of sums) if (sum !== 0n) throw new Error(`ledger: unbalanced ${kind} entry: ${asset} lines sum to ${sum}`);
    await this.loadOwners(lines.map((l) => l.owner));
    await this.loadHolds(lines.flatMap((l) => (l.hold ? [l.hold] : [])));

    // Compute every resulting value first; apply only if all of them are allowed.
    const nextBalance = new Map<BalanceState, Balance>();
    const nextHold = new Map<HoldState, bigint>();
    for (const l of lines) {
      const s = this.state(l.owner, l.asset);
      const cur = nextBalance.get(s) ?? { available: s.available, held: s.held };
      if (l.hold !== undefined) {
        const h = this.holds.get(l.hold);
        if (!h || h.status !== 'active' || h.owner !== l.owner || h.asset !== l.asset) throw new Error(`ledger: line names hold ${l.hold} that is not an active hold of ${l.owner} in ${l.asset}`);
        nextHold.set(h, (nextHold.get(h) ?? h.amount) + l.amount);
        nextBalance.set(s, { available: cur.available, held: cur.held + l.amount });
      } else {
        nextBalance.set(s, { available: cur.available + l.amount, held: cur.held });
      }
    }
    for (const [s, b] of nextBalance) {
      if (!mayGoNegative(s.owner) && (b.available < 0n || b.held < 0n)) {
        return fail('insufficient_funds', `The available ${s.asset} balance is not enough`, { asset: s.asset });
      }
    }
    for (const [h, amount] of nextHold) if (amount < 0n) return fail('insufficient_funds', `Hold ${h.id} would go below zero`);

    for (const [s, b] of nextBalance) {
      s.available = b.available;
      s.held = b.held;
    }
    for (const [h, amount] of nextHold) {
      h.amount = amount;
      if (amount === 0n) h.status = 'closed';
    }
    const id = `${this.idBase}.${sortableCounter(this.entryCount++, 4)}`;
    this.entries.push({ id, kind, ref_id: refId, created_at: this.now });
    lines.forEach((l, i) => this.postings.push({ entry_id: id, line: i, owner: l.owner, asset: l.asset, bucket: l.hold === undefined ? 'available' : 'held', amount: l.amount.toString() }));
    return ok(id);
  }

  /**
   * Moves `amount` of the owner's available balance into a new hold named `id` (the id of what it
   * is for: an order, a withdrawal). `insufficient_funds` when the available balance is short.
   */
  async openHold(input: { id: string; owner: string; asset: string; amount: bigint; kind: string; /** The id was just generated: skip looking for an existing hold. */ fresh?: boolean }): Promise<Result<HoldView, 'insufficient_funds'>> {
    if (input.amount <= 0n) throw new Error('ledger: a hold must be positive');
    if (!input.fresh) await this.loadHolds([input.id]);
    if (this.holds.has(input.id)) throw new Error(`ledger: hold ${input.id} already exists`);
    const b = await this.balance(input.owner, input.asset);
    if (b.available < input.amount && !mayGoNegative(input.owner)) return fail('insufficient_funds', `The available ${input.asset} balance is not enough`, { asset: input.asset });
    const h: HoldState = { id: input.id, owner: input.owner, asset: input.asset, amount: 0n, kind: input.kind, status: 'active', createdAt: this.now, orig: null, version: 0 };
    this.holds.set(input.id, h);
    this.missingHolds.delete(input.id);
    const posted = await this.post('hold', input.id, [
      { owner: input.owner, asset: input.asset, amount: -input.amount },
      { owner: input.owner, asset: input.asset, amount: input.amount, hold: input.id },
    ]);
    if (!posted.ok) {
      this.holds.delete(input.id);
      return posted;
    }
    return ok({ id: h.id, owner: h.owner, asset: h.asset, amount: h.amount, kind: h.kind, status: h.status });
  }

  /**
   * Returns held funds to the owner's available balance: `amount`, or all that is left. The hold
   * closes when it reaches zero. Returns the amount released (0 for an unknown or closed hold).
   */
  async releaseHold(id: string, amount?: bigint): Promise<bigint> {
    await this.loadHolds([id]);
    const h = this.holds.get(id);
    if (!h || h.status !== 'active') return 0n;
    const release = amount ?? h.amount;
    if (release < 0n || release > h.amount) throw new Error(`ledger: cannot release ${release} of hold ${id} holding ${h.amount}`);
    if (release === 0n) {
      if (h.amount === 0n) h.status = 'closed';
      return 0n;
    }
    const posted = await this.post('release', id, [
      { owner: h.owner, asset: h.asset, amount: -release, hold: id },
      { owner: h.owner, asset: h.asset, amount: release },
    ]);
    if (!posted.ok) throw new Error(`ledger: releasing hold ${id} failed: ${posted.detail}`);
    return release;
  }

  /** Whether anything was posted or changed. */
  get dirty(): boolean {
    return this.entries.length > 0 || [...this.holds.values()].some((h) => h.orig === null || h.orig.amount !== h.amount || h.orig.status !== h.status);
  }

  /** Whether `flush` has run (nothing may be posted after it). */
  get flushed(): boolean {
    return this.written;
  }

  /**
   * Writes the unit of work into the transaction. Throws ConcurrentUpdateError on a lost race.
   * Balance rows are locked from here until the transaction ends: call it before taking the audit
   * chain head (see Ledger.run).
   */
  async flush(): Promise<void> {
    if (this.written) throw new Error('ledger: flushed twice');
    this.written = true;
    const trx = this.trx;
    await insertAll(trx, 'ledger_entries', this.entries, 500);
    await insertAll(trx, 'ledger_postings', this.postings, 400);

    // Holds, then balances, each sorted by key, each one versioned multi-row upsert.
    const holds = [...this.holds.values()]
      .filter((h) => h.orig === null || h.orig.amount !== h.amount || h.orig.status !== h.status)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((h) => ({ id: h.id, owner: h.owner, asset: h.asset, amount: h.amount.toString(), kind: h.kind, status: h.status, created_at: h.createdAt, updated_at: this.now, version: h.version + 1 }));
    await upsertRows(trx, 'holds', ['id'], holds, ['amount', 'status', 'updated_at', 'version'], { versioned: true });

    const balances = [...this.balances.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, s]) => s)
      .filter((s) => (s.orig === null ? s.available !== 0n || s.held !== 0n : s.orig.available !== s.available || s.orig.held !== s.held))
      .map((s) => ({ owner: s.owner, asset: s.asset, available: s.available.toString(), held: s.held.toString(), updated_at: this.now, version: s.version + 1 }));
    await upsertRows(trx, 'balances', ['owner', 'asset'], balances, ['available', 'held', 'updated_at', 'version'], { versioned: true });
  }
}
