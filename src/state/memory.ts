import { hash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import { deliver, expiryMs, onceSpace, StateUnavailableError, windowArgs, type SharedState, type WindowDecision, type WindowOptions } from './port.js';

/** What Redis's INCRBY takes for an integer: no sign but '-', no leading zeros, spaces or exponent. */
const INTEGER = /^(?:0|-?[1-9][0-9]*)$/;

interface Entry {
  value: string;
  expiresAt: number | null;
}

/** One key's sliding-window log: admitted hit times, ascending, live from `start`. */
interface HitLog {
  hits: number[];
  start: number;
  windowMs: number;
}

/** In-process shared state for the embedded default (one server process). */
export class MemoryState implements SharedState {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, Entry>();
  private readonly windows = new Map<string, HitLog>();
  private readonly indexes = new Map<string, Set<string>>();
  /** firstSeen's memories, per space. */
  private readonly once = new Map<string, OnceMemory>();
  private readonly bus = new EventEmitter();
  private readonly sweeper: NodeJS.Timeout;
  private readonly watchers: { prefix: string; fn: (key: string) => void }[] = [];

  constructor(private readonly clock: Clock = systemClock) {
    this.bus.setMaxListeners(0);
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  /**
   * Calls `fn` after every write (set, take, delete…) to a key under `prefix`, until the returned
   * function is called. Expiry is not a write. The order thread keeps its copy of the halt keys fresh this way (trading/orders/thread.ts).
   */
  watchWrites(prefix: string, fn: (key: string) => void): () => void {
    const watcher = { prefix, fn };
    this.watchers.push(watcher);
    return () => {
      const at = this.watchers.indexOf(watcher);
      if (at >= 0) this.watchers.splice(at, 1);
    };
  }

  private wrote(key: string): void {
    for (const w of this.watchers) if (key.startsWith(w.prefix)) w.fn(key);
  }

  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e && e.expiresAt !== null && e.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [k, e] of this.entries) if (e.expiresAt !== null && e.expiresAt <= now) this.entries.delete(k);
    for (const memory of this.once.values()) rotate(memory, now);
    for (const [k, log] of this.windows) if (log.hits.length === log.start || log.hits[log.hits.length - 1]! <= now - log.windowMs) this.windows.delete(k);
  }

  async get(key: string) {
    return this.live(key)?.value ?? null;
  }
  async getMany(keys: readonly string[]) {
    return keys.map((k) => this.live(k)?.value ?? null);
  }
  async set(key: string, value: string, ttlMs?: number) {
    this.entries.set(key, { value, expiresAt: ttlMs === undefined ? null : this.clock.now() + expiryMs(ttlMs) });
    if (this.watchers.length > 0) this.wrote(key);
  }
  async setIfAbsent(key: string, value: string, ttlMs: number) {
    const ms = expiryMs(ttlMs);
    if (this.live(key)) return false;
    this.entries.set(key, { value, expiresAt: this.clock.now() + ms });
    if (this.watchers.length > 0) this.wrote(key);
    return true;
  }
  /**
   * Each id is kept as its SHA-256 (32 one-byte characters, the 'binary' encoding) and its expiry,
   * about 100 bytes of heap where a `setIfAbsent` entry with the full key takes about 270: the replay
   * memory holds every signed request of the last minute. Two ids with the same SHA-256 would make
   * the second look seen (a refusal, never an admission). Ids are recorded in generations that each
   * span the longest TTL the space has seen; a generation is dropped whole once everything in it has
   * expired, so an id stays from one to two spans and nothing walks the memory id by id. Whether an
   * id is still seen depends only on its own expiry.
   */
  async firstSeen(space: string, id: string, requestedTtlMs: number) {
    return this.recordOnce(space, id, requestedTtlMs);
  }
  private recordOnce(space: string, id: string, requestedTtlMs: number): boolean {
    const ttlMs = expiryMs(requestedTtlMs);
    onceSpace(space);
    const now = this.clock.now();
    let memory = this.once.get(space);
    if (!memory) this.once.set(space, (memory = { generations: [], since: now, spanMs: ttlMs }));
    if (ttlMs > memory.spanMs) memory.spanMs = ttlMs;
    rotate(memory, now);
    const fingerprint = hash('sha256', id, 'binary');
    for (const generation of memory.generations) {
      const expiresAt = generation.ids.get(fingerprint);
      if (expiresAt !== undefined && expiresAt > now) return false;
    }
    const current = memory.generations[0]!;
    current.ids.set(fingerprint, now + ttlMs);
    if (now + ttlMs > current.until) current.until = now + ttlMs;
    return true;
  }
  async firstSeenHeld(space: string, id: string, ttlMs: number, heldKey: string, now: number) {
    if (!Number.isSafeInteger(now) || now <= 0) throw new RangeError(`shared state: firstSeenHeld now must be a positive integer, got ${String(now)}`);
    // No await between the marker and the record: one step, as the Redis script is.
    let heldSince = Number(this.live(heldKey)?.value);
    if (!(heldSince > 0)) {
      heldSince = now;
      this.entries.set(heldKey, { value: String(now), expiresAt: null });
      if (this.watchers.length > 0) this.wrote(heldKey);
    }
    return { first: this.recordOnce(space, id, ttlMs), heldSince };
  }
  /** How many ids the once-only memory `space` holds now, expired ones not yet dropped included. */
  remembered(space: string): number {
    const memory = this.once.get(space);
    return memory ? memory.generations.reduce((n, g) => n + g.ids.size, 0) : 0;
  }
  async take(key: string) {
    const e = this.live(key);
    this.entries.delete(key);
    if (this.watchers.length > 0) this.wrote(key);
    return e?.value ?? null;
  }
  async del(key: string) {
    this.entries.delete(key);
    this.windows.delete(key);
    this.indexes.delete(key);
    if (this.watchers.length > 0) this.wrote(key);
  }
  async setMax(key: string, value: number, ttlMs: number) {
    const ms = expiryMs(ttlMs);
    if (!Number.isFinite(value)) throw new RangeError(`shared state: setMax value must be a finite number, got ${String(value)}`);
    const e = this.live(key);
    const current = e && e.value.trim() !== '' ? Number(e.value) : NaN; // '' is no number (Lua's tonumber), not 0
    this.entries.set(key, { value: current > value ? e!.value : String(value), expiresAt: this.clock.now() + ms });
    if (this.watchers.length > 0) this.wrote(key);
  }
  async incr(key: string, by: number, ttlMs: number) {
    const ms = expiryMs(ttlMs);
    if (!Number.isSafeInteger(by)) throw new RangeError(`shared state: incr by must be an integer, got ${String(by)}`);
    const e = this.live(key);
    // As INCRBY: a value that is not an integer is refused (Number() would count on from NaN, or read
    // '', ' 7', '0x10' and '1e3' as numbers), and the value is left as it was.
    if (e && !INTEGER.test(e.value)) throw new StateUnavailableError('shared state (memory) failed on incr: value is not an integer');
    const value = (e ? Number(e.value) : 0) + by;
    if (!Number.isSafeInteger(value)) throw new StateUnavailableError('shared state (memory) failed on incr: increment would overflow');
    // As in Redis (INCR_WITH_TTL): a counter without an expiry gets this one, so none lives for ever.
    this.entries.set(key, { value: String(value), expiresAt: e?.expiresAt ?? this.clock.now() + ms });
    if (this.watchers.length > 0) this.wrote(key);
    return value;
  }
  async holdAtLeast(key: string, value: string, ttlMs: number) {
    const until = this.clock.now() + expiryMs(ttlMs);
    const e = this.live(key);
    if (e && (e.expiresAt === null || e.expiresAt >= until)) return;
    this.entries.set(key, { value: e ? e.value : value, expiresAt: until });
    if (this.watchers.length > 0) this.wrote(key);
  }
  async ttl(key: string) {
    const e = this.live(key);
    if (!e) return null;
    return e.expiresAt === null ? -1 : e.expiresAt - this.clock.now();
  }
  async keys(prefix: string) {
    return [...this.entries.keys()].filter((k) => k.startsWith(prefix) && this.live(k));
  }
  async indexAdd(key: string, member: string) {
    let set = this.indexes.get(key);
    if (!set) this.indexes.set(key, (set = new Set()));
    set.add(member);
  }
  async indexRemove(key: string, member: string) {
    const set = this.indexes.get(key);
    set?.delete(member);
    if (set?.size === 0) this.indexes.delete(key);
  }
  async indexLive(key: string, prefix: string) {
    const set = this.indexes.get(key);
    if (!set) return [];
    for (const m of set) if (!this.live(prefix + m)) set.delete(m);
    if (set.size === 0) this.indexes.delete(key);
    return [...set];
  }
  async slidingWindowHit(key: string, requestedLimit: number, requestedWindowMs: number, requestedNow?: number, options: WindowOptions = {}): Promise<WindowDecision> {
    const { limit, windowMs, now } = windowArgs(requestedLimit, requestedWindowMs, requestedNow);
    let log = this.windows.get(key);
    if (!log) {
      log = { hits: [], start: 0, windowMs };
      this.windows.set(key, log);
    }
    log.windowMs = windowMs;
    const { hits } = log;
    // Time never runs backwards for a key (see the port): a decision earlier than the newest hit
    // counts at the newest hit's time, and one more than a window earlier (the clock stepped back)
    // first moves the whole log back so that the newest hit is at the decision time. Only a hit
    // still in the log counts (as in Redis's sorted set): one that an earlier decision pruned is gone.
    let at = now ?? this.clock.now();
    const newest = log.start < hits.length ? hits[hits.length - 1] : undefined;
    if (newest !== undefined && newest > at) {
      if (newest - at > windowMs) {
        const back = newest - at;
        for (let i = log.start; i < hits.length; i++) hits[i]! -= back;
      } else {
        at = newest;
      }
    }
    while (log.start < hits.length && hits[log.start]! <= at - windowMs) log.start++;
    if (log.start > 64 && log.start * 2 > hits.length) {
      hits.splice(0, log.start);
      log.start = 0;
    }
    for (const holdKey of options.holdKeys ?? []) {
      const e = this.live(holdKey);
      if (e) {
        const left = e.expiresAt === null ? windowMs : Math.max(1, e.expiresAt - this.clock.now());
        return { ...logDecision(log, limit, at, false), retryAfterMs: left, held: { key: holdKey, value: e.value } };
      }
    }
    const allowed = hits.length - log.start < limit;
    if (allowed) hits.push(at);
    return logDecision(log, limit, at, allowed);
  }
  async publish(channel: string, message: string) {
    // Delivered asynchronously, as Redis does, so publishers never run subscribers inline.
    queueMicrotask(() => deliver(this.bus.listeners(channel) as ((m: string) => void)[], channel, message));
  }
  async subscribe(channel: string, handler: (message: string) => void) {
    this.bus.on(channel, handler);
    return async () => {
      this.bus.off(channel, handler);
    };
  }
  async ping() {
    return true;
  }
  async close() {
    clearInterval(this.sweeper);
    this.bus.removeAllListeners();
  }
}

/**
 * One firstSeen memory: each id's SHA-256 and when it expires, in generations, newest first. The
 * newest takes the ids recorded since `since`; no id lives longer than `spanMs` (the longest TTL
 * asked for, which never shrinks). A generation is dropped whole once the clock has passed the
 * latest expiry in it (`until`): no id-by-id eviction, and never an id that has not expired by
 * the clock that drops it. (Deleting ids one by one from the front of a Map, as an earlier version
 * did, leaves slots that every new iterator skips, and made each call cost time in proportion to
 * the memory's size.) Normally two generations are held; after the clock steps back, the ones
 * recorded before the step stay until the clock reaches their expiries, while new ids go on in
 * generations of their own that are dropped as usual.
 */
interface OnceMemory {
  generations: { ids: Map<string, number>; until: number }[];
  since: number;
  spanMs: number;
}

/**
 * Drops every generation whose ids have all expired, and starts a new one once the newest is a
 * span old, or the clock has stepped back by a span or more (judged by `since` alone, a generation
 * would then take every id until the clock caught up again: an hour's step, an hour of ids).
 */
function rotate(memory: OnceMemory, now: number): void {
  const { generations } = memory;
  for (let i = generations.length - 1; i >= 0; i--) if (generations[i]!.until <= now) generations.splice(i, 1);
  const age = now - memory.since;
  if (generations.length > 0 && age < memory.spanMs && -age < memory.spanMs) return;
  generations.unshift({ ids: new Map(), until: Number.NEGATIVE_INFINITY });
  memory.since = now;
}

function logDecision(log: HitLog, limit: number, at: number, allowed: boolean): WindowDecision {
  const { hits, start, windowMs } = log;
  const count = hits.length - start;
  // One more hit is admitted once the (count - limit + 1) oldest hits have left the window.
  const blocking = count >= limit ? hits[start + count - Math.max(limit, 0)] : undefined;
  const retryAfterMs = blocking === undefined ? (count >= limit ? windowMs : 0) : Math.max(1, blocking + windowMs - at);
  const nextFreeMs = count === 0 ? 0 : Math.max(1, hits[start]! + windowMs - at);
  const resetMs = count === 0 ? 0 : Math.max(1, hits[hits.length - 1]! + windowMs - at);
  return { allowed, count, retryAfterMs, nextFreeMs, resetMs, at };
}
