import type { Clock } from '../../lib/clock.js';

/**
 * A small LRU with a maximum age: at most `maxEntries` values, none older than `maxAgeMs`.
 * `onEvict` sees every value that leaves (so plaintext secrets can be wiped).
 */
export class BoundedCache<K, V> {
  private readonly entries = new Map<K, { value: V; at: number; touched: number }>();

  constructor(
    private readonly options: { maxEntries: number; maxAgeMs: number; clock: Clock; onEvict?: (value: V) => void },
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    const now = this.options.clock.now();
    // Stored "in the future" (the clock stepped back since): its age is unknown, so it is too old,
    // or it would outlive maxAgeMs by the size of the step.
    if (now - e.at >= this.options.maxAgeMs || now < e.at) {
      this.delete(key);
      return undefined;
    }
    // Refresh recency (Map keeps insertion order) without extending the age; at most once a
    // second per entry, so a hot entry does not pay a delete and an insert on every request.
    if (now - e.touched >= 1000) {
      e.touched = now;
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e.value;
  }

  set(key: K, value: V): void {
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      if (old.value !== value) this.options.onEvict?.(old.value);
    }
    const now = this.options.clock.now();
    this.entries.set(key, { value, at: now, touched: now });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value as K;
      this.delete(oldest);
    }
  }

  delete(key: K): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.options.onEvict?.(e.value);
  }

  /** Deletes every entry whose value matches. */
  deleteWhere(match: (value: V, key: K) => boolean): void {
    for (const [k, e] of [...this.entries]) if (match(e.value, k)) this.delete(k);
  }

  clear(): void {
    for (const k of [...this.entries.keys()]) this.delete(k);
  }
}
