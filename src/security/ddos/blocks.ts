import { lockStillAdmin, NO_LONGER_ADMIN } from '../../accounts/accounts.js';
import { anonymizeTarget } from '../../audit/anonymize.js';
import type { AuditLog } from '../../audit/audit-log.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import { displayParagraphs } from '../../lib/text.js';
import type { Store } from '../../store/db.js';
import { StateUnavailableError, type SharedState } from '../../state/port.js';
import type { SecurityEvents } from '../events/index.js';
import { blockListOf, canonicalAddress, clientGroup, familyOf, parseTarget, type AddressMatcher } from './ip.js';
import type { DdosMetrics } from './metrics.js';

export interface IpBlock {
  /** An address, or a range in CIDR notation (canonical spelling). */
  target: string;
  reason: string;
  source: 'manual' | 'auto';
  createdAt: number;
  /** Epoch ms; null for a block that lasts until removed. */
  expiresAt: number | null;
  createdBy: string | null;
}

const KEY_PREFIX = 'ipblock:';
/** Changes on every add or remove, so a process that missed a message notices on its next poll. */
const VERSION_KEY = 'ipblocks:version';
/**
 * Present while shared state holds the list the processes wrote. Gone (Redis restarted empty,
 * failed over to an empty replica, flushed) means the blocks are gone too: the next sync of each
 * process puts back the administrator blocks from the store and the automatic blocks it mirrors.
 */
const HELD_KEY = 'ipblocks:held';
/**
 * Each process's own marker (this prefix and a random id), rewritten by each of its syncs with a
 * new value. The shared marker alone cannot tell a running process that the list was lost when
 * Redis comes back from an older snapshot (or a lagging replica is promoted): the marker is in it,
 * the blocks written since are not. Nor when a process starting after Redis restarted empty sets
 * the shared marker again before the others look. A process whose marker does not hold the value
 * its last sync wrote puts its blocks back, as for a missing shared marker.
 */
const PROCESS_HELD_PREFIX = 'ipblocks:held:';
/** A process's marker outlives many missed syncs; a dead process's is gone after this. */
const PROCESS_HELD_TTL_MS = 3_600_000;
/**
 * The targets of the blocks in shared state (a set; members whose block expired are dropped as
 * they are read). Syncs read it instead of walking the keyspace for `ipblock:*`, which under a
 * flood would mean every process scanning every replay and limiter key on each new block.
 */
const INDEX_KEY = 'ipblocks:index';
/**
 * How often each process also walks the keyspace for blocks missing from the index: ones written
 * by a version without it (during a rolling upgrade) or left out by an add and a remove of the
 * same target racing. Bounded in time, so a flood of new blocks never multiplies it.
 */
const WALK_EVERY_MS = 60_000;
export const BLOCKS_CHANNEL = 'ipblocks';

type Message = { op: 'add'; block: IpBlock } | { op: 'remove'; target: string };

export interface IpBlocksDeps {
  store: Store;
  state: SharedState;
  clock: Clock;
  events: SecurityEvents;
  log: Logger;
  metrics: DdosMetrics;
  /** Admin blocks are audited in the transaction that stores them. */
  audit?: AuditLog;
  /** How often each process checks the version key (a safety net behind pub/sub). */
  syncMs?: number;
}

/**
 * The IP block list. Blocks live in shared state (every process enforces them) and, when made by
 * an administrator, in the store too (they survive restarts). Each process keeps a mirror that it
 * checks with no I/O, so a blocked address is refused before any expensive work and a flood from
 * it costs nothing; the mirror follows changes by pub/sub at once and by polling a version key.
 * While shared state is unavailable the mirror stays in force, and automatic blocks are applied
 * locally.
 */
export class IpBlocks {
  /** Single addresses and IPv6 /64s (the unit automatic blocks use), by canonical target. */
  private readonly exact = new Map<string, IpBlock>();
  /** Other ranges (administrator blocks; few). */
  private readonly ranges = new Map<string, { block: IpBlock; list: AddressMatcher }>();
  /** Blocks this process applied while shared state was unavailable; pushed there when it returns. */
  private readonly localOnly = new Map<string, IpBlock>();
  /**
   * Automatic blocks this process wrote to shared state first but could not index or announce
   * (shared state went away between the calls): the write-back announces them, although its
   * setIfAbsent then finds the key already there.
   */
  private readonly unannounced = new Set<string>();
  /**
   * Administrator blocks committed to the store whose write to shared state (or announcement)
   * failed: enforced here already, written back and announced by the next sync, unless lifted
   * from the store meanwhile.
   */
  private readonly unshared = new Map<string, IpBlock>();
  /**
   * Targets lifted from the store (and audited) whose removal from shared state (or announcement)
   * failed: lifted here already, removed there and announced by the next sync, with no new audit.
   */
  private readonly unlifted = new Set<string>();
  private seenVersion: string | null | undefined;
  /** When this process last walked the keyspace for unindexed blocks (see WALK_EVERY_MS). */
  private lastWalkAt = -Infinity;
  /** The start-up read of the store succeeded. */
  private seeded = false;
  /** A sync has completed: from then on, a missing HELD_KEY means shared state lost the list. */
  private synced = false;
  /** This process's marker (see PROCESS_HELD_PREFIX) and the value its last sync wrote there. */
  private readonly marker = `${PROCESS_HELD_PREFIX}${randomBytes(8).toString('hex')}`;
  private markerValue: string | undefined;
  private markerWrites = 0;
  /** Syncs run one at a time (the timer's and list()'s), so each reads the marker its predecessor wrote. */
  private syncing: Promise<void> = Promise.resolve();
  private unsubscribe: (() => Promise<void>) | undefined;
  private readonly timer: NodeJS.Timeout;
  /** The first load (store, then shared state) has been attempted. */
  readonly initialized: Promise<void>;
  /** Also listening for changes from other processes. */
  readonly ready: Promise<void>;

  constructor(private readonly deps: IpBlocksDeps) {
    this.initialized = this.seed().then((read) => {
      this.seeded = read;
      return this.sync();
    });
    this.ready = this.initialized.then(() =>
      deps.state.subscribe(BLOCKS_CHANNEL, (m) => this.onMessage(m)).then(
        (off) => {
          this.unsubscribe = off;
        },
        (err) => deps.log.warn({ err }, 'ip blocks: cannot subscribe to changes; relying on polling'),
      ),
    );
    this.timer = setInterval(() => void this.sync(), deps.syncMs ?? 2000);
    this.timer.unref();
  }

  /** The block covering this address, if any. Synchronous, no I/O: runs first on every request. */
  check(ip: string): IpBlock | undefined {
    if (this.exact.size === 0 && this.ranges.size === 0) return undefined;
    const address = canonicalAddress(ip);
    if (!address) return undefined;
    const now = this.deps.clock.now();
    const family = familyOf(address);
    for (const key of family === 'ipv6' ? [address, clientGroup(address)] : [address]) {
      const b = this.exact.get(key);
      if (b && this.live(b, now)) return b;
    }
    for (const { block, list } of this.ranges.values()) {
      if (this.live(block, now) && list.check(address, family)) return block;
    }
    return undefined;
  }

  private live(b: IpBlock, now: number): boolean {
    if (b.expiresAt === null || b.expiresAt > now) return true;
    this.forget(b.target);
    this.localOnly.delete(b.target);
    this.unannounced.delete(b.target);
    this.unshared.delete(b.target);
    return false;
  }

  /** Counts a request refused because of a block (metrics). */
  countRefusal(): void {
    this.deps.metrics.blockedRequests.inc();
  }

  /** Every block in force, fresh from shared state when it answers. */
  async list(): Promise<IpBlock[]> {
    await this.sync(true);
    const now = this.deps.clock.now();
    return [...this.exact.values(), ...[...this.ranges.values()].map((r) => r.block)].filter((b) => this.live(b, now)).sort((a, b) => a.createdAt - b.createdAt || a.target.localeCompare(b.target));
  }

  /**
   * An administrator's block: stored, shared with every process, announced. With `byAdmin`, `by` (an
   * account id) must still be an admin as committed: a demotion committed after the request's role
   * check refuses the block (forbidden_role), stored and enforced nowhere.
   */
  async add(
    target: string,
    options: { reason: string; ttlMs?: number | undefined; by: string; sessionId?: string | undefined; callerIp?: string | undefined; byAdmin?: boolean | undefined },
  ): Promise<Result<IpBlock, 'validation_failed' | 'conflict' | 'forbidden_role'>> {
    const t = parseTarget(target);
    if (!t) return fail('validation_failed', 'target must be an IP address or a CIDR range (at least /8 for IPv4, /16 for IPv6)');
    // A block is enforced before authentication, on every route, the admin ones included, and only
    // the API lifts it: one covering the administrator's own address would cut them off from the
    // very route that lifts it (behind an undeclared local proxy, where every client is 127.0.0.1,
    // it would cut off everyone), with no way back but editing the store and shared state.
    const caller = options.callerIp === undefined ? undefined : canonicalAddress(options.callerIp);
    if (caller !== undefined && blockListOf([t.canonical]).check(caller, familyOf(caller))) {
      return fail('conflict', `${t.canonical} covers your own address (${caller}): it would lock you out of the API, and out of lifting it; block it from another address, or a narrower range`);
    }
    // Administrators read the reason in the list: the rule of every text people read (no control,
    // bidirectional or invisible formatting characters; a NUL byte would also fail the insert on
    // PostgreSQL). Blank: the default.
    const reason = displayParagraphs(options.reason, 'reason', 200);
    if (!reason.ok) return reason;
    const now = this.deps.clock.now();
    const block: IpBlock = {
      target: t.canonical,
      reason: reason.value || 'blocked by an administrator',
      source: 'manual',
      createdAt: now,
      expiresAt: options.ttlMs === undefined ? null : now + options.ttlMs,
      createdBy: options.by,
    };
    // Stored and audited first: a block the store refuses is in force nowhere (shared state would
    // enforce it unrecorded, and lose it at the next restore).
    const row = { target: block.target, reason: block.reason, created_at: now, expires_at: block.expiresAt, created_by: options.by };
    const { target: _t, ...update } = row;
    const stored = await this.deps.store.transaction(async (trx) => {
      if (options.byAdmin && !(await lockStillAdmin(this.deps.store, trx, options.by))) return false;
      await trx.insertInto('ip_blocks').values(row).onConflict((oc) => oc.column('target').doUpdateSet(update)).execute();
      await this.deps.audit?.recordIn(trx, { type: 'admin.ip.blocked', actorId: options.by, details: { target: block.target, reason: block.reason, by: options.by, ...(options.sessionId !== undefined ? { via: 'session', sessionId: options.sessionId } : {}) } });
      return true;
    });
    if (!stored) return fail('forbidden_role', NO_LONGER_ADMIN);
    // Committed: enforced here at once, whatever shared state does. A 503 now would leave a stored,
    // audited block answered as failed, and the retry it invites would audit it twice; the next
    // sync writes it to shared state and announces it instead (a few seconds), as after a crash here.
    this.apply(block);
    this.unlifted.delete(block.target);
    this.unshared.set(block.target, block);
    try {
      await this.share(block);
    } catch (err) {
      this.deps.log.warn({ err, target: anonymizeTarget(block.target) ?? 'unknown' }, 'ip blocks: could not share an administrator block; the next sync will');
    }
    this.deps.metrics.blocksCreated.inc({ source: 'manual', reason: 'admin' });
    this.deps.events.emit({ type: 'ip.blocked', at: now, target: block.target, reason: block.reason, by: options.by, audited: this.deps.audit !== undefined });
    return ok(block);
  }

  /**
   * A temporary block decided by the DDoS guard. Only the first process to block a target
   * announces it; with shared state unavailable the block applies to this process alone.
   */
  async autoBlock(target: string, reason: string, ttlMs: number): Promise<IpBlock | undefined> {
    const t = parseTarget(target);
    if (!t) return undefined;
    const now = this.deps.clock.now();
    const block: IpBlock = { target: t.canonical, reason, source: 'auto', createdAt: now, expiresAt: now + ttlMs, createdBy: null };
    let first: boolean;
    let written = false;
    try {
      written = first = await this.deps.state.setIfAbsent(KEY_PREFIX + block.target, JSON.stringify(block), ttlMs);
      await this.deps.state.indexAdd(INDEX_KEY, block.target);
    } catch (err) {
      if (!(err instanceof StateUnavailableError)) throw err;
      // Written but not indexed: the other processes' syncs cannot see it, and the write-back's
      // setIfAbsent will find it present, so it must announce it anyway.
      if (written) this.unannounced.add(block.target);
      this.localOnly.set(block.target, block);
      first = true;
    }
    if (!first) {
      const existing = parseBlock(await this.deps.state.get(KEY_PREFIX + block.target).catch(() => null));
      if (existing) this.apply(existing);
      return existing ?? undefined;
    }
    if (!this.localOnly.has(block.target)) await this.announce({ op: 'add', block }).catch(() => {});
    this.apply(block);
    this.deps.metrics.blocksCreated.inc({ source: 'auto', reason });
    this.deps.events.emit({ type: 'ip.blocked', at: now, target: block.target, reason, by: 'auto' });
    // The process log names the network, never the address: administrators read the block itself
    // in the block list, auditors the event in the encrypted audit trail.
    this.deps.log.warn({ target: anonymizeTarget(block.target) ?? 'unknown', reason, seconds: ttlMs / 1000 }, 'ddos guard: address blocked');
    return block;
  }

  /**
   * Lifts a block; false when there was none. With `byAdmin`, `by` (an account id) must still be an
   * admin as committed: a demotion committed after the request's role check refuses the lift
   * (forbidden_role), the block staying in force everywhere.
   */
  async remove(target: string, by: string, sessionId?: string, options: { byAdmin?: boolean } = {}): Promise<Result<boolean, 'validation_failed' | 'forbidden_role'>> {
    const t = parseTarget(target);
    if (!t) return fail('validation_failed', 'target must be an IP address or a CIDR range');
    const key = KEY_PREFIX + t.canonical;
    const inState = (await this.deps.state.get(key)) !== null;
    const known = this.exact.has(t.canonical) || this.ranges.has(t.canonical);
    // The stored row goes first: lifted in shared state only, a block would come back at the next
    // restart or restore, unaudited meanwhile.
    const existed = await this.deps.store.transaction(async (trx) => {
      if (options.byAdmin && !(await lockStillAdmin(this.deps.store, trx, by))) return undefined;
      const removed = await trx.deleteFrom('ip_blocks').where('target', '=', t.canonical).executeTakeFirst();
      const found = inState || known || Number(removed.numDeletedRows) > 0;
      if (found) await this.deps.audit?.recordIn(trx, { type: 'admin.ip.unblocked', actorId: by, details: { target: t.canonical, reason: 'admin', by, ...(sessionId !== undefined ? { via: 'session', sessionId } : {}) } });
      return found;
    });
    if (existed === undefined) return fail('forbidden_role', NO_LONGER_ADMIN);
    // Committed: lifted here at once, whatever shared state does. A 503 now would leave a lift
    // stored and audited but answered as failed (the retry it invites audits it twice), and the
    // block in force on every other process with nothing to retry the removal; the next sync
    // removes it from shared state and announces it instead (a few seconds).
    this.forget(t.canonical);
    this.localOnly.delete(t.canonical);
    this.unannounced.delete(t.canonical);
    this.unshared.delete(t.canonical);
    this.unlifted.add(t.canonical);
    try {
      await this.unshare(t.canonical);
    } catch (err) {
      this.deps.log.warn({ err, target: anonymizeTarget(t.canonical) ?? 'unknown' }, 'ip blocks: could not lift a block from shared state; the next sync will');
    }
    if (existed) this.deps.events.emit({ type: 'ip.unblocked', at: this.deps.clock.now(), target: t.canonical, reason: 'admin', by, audited: this.deps.audit !== undefined });
    return ok(existed);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.unsubscribe?.().catch(() => {});
  }

  private apply(block: IpBlock): void {
    const t = parseTarget(block.target);
    if (!t) return;
    this.forget(t.canonical);
    const single = t.prefix === (t.family === 'ipv4' ? 32 : 128) || (t.family === 'ipv6' && t.prefix === 64);
    if (single) this.exact.set(t.canonical, block);
    else this.ranges.set(t.canonical, { block, list: blockListOf([t.canonical]) });
  }

  private forget(target: string): void {
    this.exact.delete(target);
    this.ranges.delete(target);
  }

  /** Writes an administrator block to shared state and announces it; done once all three succeed. */
  private async share(block: IpBlock): Promise<void> {
    const ttl = block.expiresAt === null ? undefined : block.expiresAt - this.deps.clock.now();
    if (ttl !== undefined && ttl <= 0) {
      this.unshared.delete(block.target);
      return;
    }
    const value = JSON.stringify(block);
    await this.deps.state.set(KEY_PREFIX + block.target, value, ttl);
    await this.deps.state.indexAdd(INDEX_KEY, block.target);
    const final = await this.settle(block.target, block, value);
    await this.announce(final ? { op: 'add', block: final } : { op: 'remove', target: block.target });
    if (this.unshared.get(block.target) !== block) return; // replaced here meanwhile: that one is shared on its own
    this.unshared.delete(block.target);
    if (final) this.apply(final);
    else this.forget(block.target);
  }

  /**
   * Makes shared state agree with the store after this process wrote a target there (`written`: the
   * block and its value, or null after a removal), and answers what it holds then. The store is
   * read again after the write: a lift or a newer block committed by another process between this
   * process's own store read (or commit) and its write, whose shared-state write came first, would
   * otherwise be undone by it (a lifted block enforced again everywhere, with nothing to notice).
   * Each writer reads the store after its write, so the last of them puts what the store holds.
   */
  private async settle(target: string, written: IpBlock | null, value: string | null): Promise<IpBlock | null> {
    const key = KEY_PREFIX + target;
    let current = written;
    for (let round = 0; round < 3; round++) {
      const stored = await this.storedBlock(target);
      if (stored === null ? current === null : current !== null && stored.createdAt === current.createdAt) return current;
      if (stored === null) {
        // Lifted meanwhile: take back what this process wrote, unless something else (an
        // automatic block) replaced it there since.
        if (value !== null && (await this.deps.state.get(key)) === value) await this.deps.state.del(key);
        current = null;
        value = null;
      } else {
        value = JSON.stringify(stored);
        await this.deps.state.set(key, value, stored.expiresAt === null ? undefined : stored.expiresAt - this.deps.clock.now());
        await this.deps.state.indexAdd(INDEX_KEY, target);
        current = stored;
      }
    }
    return current;
  }

  /** The administrator block the store holds for a target, if one is in force (rejects when the store cannot be read). */
  private async storedBlock(target: string): Promise<IpBlock | null> {
    const r = await this.deps.store.db.selectFrom('ip_blocks').selectAll().where('target', '=', target).executeTakeFirst();
    if (!r) return null;
    const expiresAt = r.expires_at === null ? null : Number(r.expires_at);
    if (expiresAt !== null && expiresAt <= this.deps.clock.now()) return null;
    return { target: r.target, reason: r.reason, source: 'manual', createdAt: Number(r.created_at), expiresAt, createdBy: r.created_by };
  }

  /** Removes a lifted block from shared state and announces it; done once all three succeed. */
  private async unshare(target: string): Promise<void> {
    await this.deps.state.del(KEY_PREFIX + target);
    await this.deps.state.indexRemove(INDEX_KEY, target);
    // Blocked again by another process between the lift's commit and this removal: put it back.
    const final = await this.settle(target, null, null);
    await this.announce(final ? { op: 'add', block: final } : { op: 'remove', target });
    if (!this.unlifted.delete(target)) return;
    if (final) this.apply(final);
  }

  private async announce(message: Message): Promise<void> {
    await this.deps.state.set(VERSION_KEY, randomBytes(8).toString('hex'));
    await this.deps.state.publish(BLOCKS_CHANNEL, JSON.stringify(message));
  }

  private onMessage(raw: string): void {
    try {
      const m = JSON.parse(raw) as Message;
      if (m.op === 'add') {
        const block = parseBlock(JSON.stringify(m.block));
        if (block) this.apply(block);
      } else if (m.op === 'remove' && typeof m.target === 'string') {
        this.forget(m.target);
        this.localOnly.delete(m.target);
        this.unshared.delete(m.target);
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'ip blocks: unreadable change message ignored');
    }
  }

  /** Administrator blocks from the store: in force at once, and put back into shared state if it lost the list. */
  private async seed(): Promise<boolean> {
    const now = this.deps.clock.now();
    let rows;
    try {
      rows = await this.deps.store.db.selectFrom('ip_blocks').selectAll().execute();
    } catch (err) {
      this.deps.log.error({ err }, 'ip blocks: cannot read stored blocks');
      return false;
    }
    for (const r of rows) {
      const expiresAt = r.expires_at === null ? null : Number(r.expires_at);
      if (expiresAt !== null && expiresAt <= now) {
        await this.deps.store.db.deleteFrom('ip_blocks').where('target', '=', r.target).execute();
        continue;
      }
      const block: IpBlock = { target: r.target, reason: r.reason, source: 'manual', createdAt: Number(r.created_at), expiresAt, createdBy: r.created_by };
      this.apply(block);
      this.localOnly.set(block.target, block); // until the next sync (which writes it back if shared state lost the list)
    }
    return true;
  }

  /**
   * Reloads the mirror from shared state when the version changed (or `force`). Blocks applied
   * while shared state was down are written back first.
   */
  private sync(force = false): Promise<void> {
    const run = this.syncing.then(() => this.syncOnce(force));
    this.syncing = run;
    return run;
  }

  private async syncOnce(force: boolean): Promise<void> {
    try {
      // Lost: no shared marker, or (after this process's first sync) not the value this process
      // wrote to its own marker last time (see PROCESS_HELD_PREFIX).
      const lost = (await this.deps.state.get(HELD_KEY)) === null || (this.markerValue !== undefined && (await this.deps.state.get(this.marker)) !== this.markerValue);
      // Fresh shared state at start-up holds what the start-up seed just read. With the store
      // unreadable the marker stays unset, so the next sync tries again.
      const restored = !lost || (!this.synced && this.seeded) || (await this.restore());
      for (const block of [...this.localOnly.values()]) {
        // Administrator blocks wait here only as read from the store (start-up, restore). While
        // shared state still holds the list it has them already, or an administrator lifted them
        // since the store was read: writing them back would undo that.
        if (!lost && block.source === 'manual') {
          this.localOnly.delete(block.target);
          continue;
        }
        const ttl = block.expiresAt === null ? undefined : block.expiresAt - this.deps.clock.now();
        if (ttl !== undefined && ttl <= 0) {
          this.localOnly.delete(block.target);
          this.unannounced.delete(block.target);
          continue;
        }
        // A permanent block gets a ten-year expiry here (setIfAbsent always takes one).
        const added = await this.deps.state.setIfAbsent(KEY_PREFIX + block.target, JSON.stringify(block), ttl ?? 10 * 365 * 86_400_000);
        await this.deps.state.indexAdd(INDEX_KEY, block.target);
        if (added || this.unannounced.has(block.target)) await this.announce({ op: 'add', block });
        this.unannounced.delete(block.target);
        this.localOnly.delete(block.target);
      }
      for (const target of [...this.unlifted]) {
        // Blocked again since (by another process: this one drops the target from here when it
        // blocks it): that block stands, and removing it from shared state would lift it unaudited.
        let stored;
        try {
          stored = await this.deps.store.db.selectFrom('ip_blocks').select('target').where('target', '=', target).executeTakeFirst();
        } catch (err) {
          this.deps.log.warn({ err }, 'ip blocks: cannot read the store to finish a lift; next sync');
          continue;
        }
        if (!this.unlifted.has(target)) continue;
        if (stored) this.unlifted.delete(target);
        else await this.unshare(target);
      }
      for (const block of [...this.unshared.values()]) {
        // Lifted since (here or by another process): the store no longer holds it, and writing it
        // back would enforce a block nobody can see recorded.
        let stored;
        try {
          stored = await this.deps.store.db.selectFrom('ip_blocks').select('created_at').where('target', '=', block.target).executeTakeFirst();
        } catch (err) {
          this.deps.log.warn({ err }, 'ip blocks: cannot read a stored block to share it; next sync');
          continue;
        }
        if (this.unshared.get(block.target) !== block) continue; // lifted or replaced meanwhile
        if (!stored || Number(stored.created_at) !== block.createdAt) {
          this.unshared.delete(block.target);
          if (!stored) this.forget(block.target);
          continue;
        }
        await this.share(block);
      }
      if (lost && restored) await this.deps.state.set(HELD_KEY, '1');
      if (restored) {
        const value = `${this.deps.clock.now()}:${++this.markerWrites}`;
        await this.deps.state.set(this.marker, value, PROCESS_HELD_TTL_MS);
        this.markerValue = value;
      }
      this.synced = true;
      const version = await this.deps.state.get(VERSION_KEY);
      const now = this.deps.clock.now();
      const walk = now - this.lastWalkAt >= WALK_EVERY_MS;
      if (!force && !walk && this.seenVersion !== undefined && version === this.seenVersion) return;
      if (walk) {
        for (const key of await this.deps.state.keys(KEY_PREFIX)) await this.deps.state.indexAdd(INDEX_KEY, key.slice(KEY_PREFIX.length));
        this.lastWalkAt = now;
      }
      const targets = await this.deps.state.indexLive(INDEX_KEY, KEY_PREFIX);
      const values = await this.deps.state.getMany(targets.map((t) => KEY_PREFIX + t));
      const fresh = values.map(parseBlock).filter((b): b is IpBlock => b !== null);
      // A lost list not yet restored (the store unreadable) lacks the administrator blocks: the
      // mirror keeps those it holds until the store answers, rather than lift them meanwhile.
      if (restored) {
        this.exact.clear();
        this.ranges.clear();
      }
      for (const b of [...fresh, ...this.localOnly.values(), ...this.unshared.values()]) if (!this.unlifted.has(b.target)) this.apply(b);
      this.seenVersion = version;
    } catch (err) {
      if (!(err instanceof StateUnavailableError)) this.deps.log.error({ err }, 'ip blocks: sync failed');
    }
  }

  /**
   * Shared state lost the list: administrator blocks come back from the store, automatic ones
   * from this mirror (they live nowhere else), all queued to be written back by the caller.
   */
  private async restore(): Promise<boolean> {
    const now = this.deps.clock.now();
    for (const b of this.exact.values()) if (b.source === 'auto' && this.live(b, now)) this.localOnly.set(b.target, b);
    for (const { block } of this.ranges.values()) if (block.source === 'auto' && this.live(block, now)) this.localOnly.set(block.target, block);
    if (!(await this.seed())) return false;
    this.deps.log.warn({ blocks: this.localOnly.size }, 'ip blocks: shared state lost the block list (restarted empty?); restoring it');
    return true;
  }
}

function parseBlock(
raw: string | null): IpBlock | null {
  if (raw === null) return null;
  try {
    const b = JSON.parse(raw) as Partial<IpBlock>;
    if (typeof b.target !== 'string' || !parseTarget(b.target) || typeof b.reason !== 'string' || typeof b.createdAt !== 'number') return null;
    return {
      target: b.target,
      reason: b.reason,
      source: b.source === 'auto' ? 'auto' : 'manual',
      createdAt: b.createdAt,
      expiresAt: typeof b.expiresAt === 'number' ? b.expiresAt : null,
      createdBy: typeof b.createdBy === 'string' ? b.createdBy : null,
    };
  } catch {
    return null;
  }
}
