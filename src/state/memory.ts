import { EventEmitter } from 'node:events';
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import type { SharedState, WindowDecision } from './port.js';

interface Entry {
  value: string;
  expiresAt: number | null;
}

/** In-process shared state for the embedded default (one server process). */
export class MemoryState implements SharedState {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, Entry>();
  private readonly windows = new Map<string, number[]>();
  private readonly bus = new EventEmitter();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly clock: Clock = systemClock) {
    this.bus.setMaxListeners(0);
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
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
    for (const [k, hits] of this.windows) if (hits.length === 0 || hits[hits.length - 1]! <= now - 3_600_000) this.windows.delete(k);
  }

  async get(key: string) {
    return this.live(key)?.value ?? null;
  }
  async getMany(keys: readonly string[]) {
    return keys.map((k) => this.live(k)?.value ?? null);
  }
  async set(key: string, value: string, ttlMs?: number) {
    this.entries.set(key, { value, expiresAt: ttlMs === undefined ? null : this.clock.now() + ttlMs });
  }
  async setIfAbsent(key: string, value: string, ttlMs: number) {
    if (this.live(key)) return false;
    this.entries.set(key, { value, expiresAt: this.clock.now() + ttlMs });
    return true;
  }
  async take(key: string) {
    const e = this.live(key);
    this.entries.delete(key);
    return e?.value ?? null;
  }
  async del(key: string) {
    this.entries.delete(key);
    this.windows.delete(key);
  }
  async incr(key: string, by: number, ttlMs: number) {
    const e = this.live(key);
    const value = (e ? Number(e.value) : 0) + by;
    this.entries.set(key, { value: String(value), expiresAt: e ? e.expiresAt : this.clock.now() + ttlMs });
    return value;
  }
  async ttl(key: string) {
    const e = this.live(key);
    if (!e) return null;
    return e.expiresAt === null ? -1 : e.expiresAt - this.clock.now();
  }
  async keys(prefix: string) {
    return [...this.entries.keys()].filter((k) => k.startsWith(prefix) && this.live(k));
  }
  async slidingWindowHit(key: string, limit: number, windowMs: number, now: number): Promise<WindowDecision> {
    const hits = (this.windows.get(key) ?? []).filter((t) => t > now - windowMs);
    let allowed = false;
    if (hits.length < limit) {
      hits.push(now);
      allowed = true;
    }
    this.windows.set(key, hits);
    return windowDecision(allowed, hits, limit, windowMs, now);
  }
  async publish(channel: string, message: string) {
    // Delivered asynchronously, as Redis does, so publishers never run subscribers inline.
    queueMicrotask(() => this.bus.emit(channel, message));
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

/** Shared by both implementations so they report identically. `hits` is sorted ascending. */
export function windowDecision(allowed: boolean, hits: readonly number[], limit: number, windowMs: number, now: number): WindowDecision {
  const count = hits.length;
  const oldest = hits[0];
  const newest = hits[count - 1];
  const retryAfterMs = count < limit || oldest === undefined ? 0 : Math.max(1, oldest + windowMs - now);
  const resetMs = newest === undefined ? 0 : Math.max(0, newest + windowMs - now);
  return { allowed, count, retryAfterMs, resetMs };
}
