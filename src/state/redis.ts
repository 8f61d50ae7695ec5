import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { windowDecision } from './memory.js';
import { StateUnavailableError, type SharedState, type WindowDecision } from './port.js';

const INCR_WITH_TTL = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`;

// One round trip, atomic: drop hits that left the window, admit if room, report oldest/newest.
const SLIDING_WINDOW = `
local key, limit, window, now, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, member)
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', key, window)
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
return {allowed, count, oldest[2] or '', newest[2] or ''}`;

export interface RedisStateOptions {
  url: string;
  prefix: string;
  /** Per-command deadline; a slower answer counts as unavailable. */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/**
 * Shared state on Redis (ioredis). The offline queue is off and every command has a short deadline,
 * so when Redis is down calls reject at once (StateUnavailableError) instead of hanging; the client
 * keeps reconnecting in the background and recovers by itself.
 */
export class RedisState implements SharedState {
  readonly kind = 'redis' as const;
  private readonly client: Redis;
  private subscriber: Redis | undefined;
  private readonly handlers = new Map<string, Set<(m: string) => void>>();
  readonly prefix: string;
  private seq = 0;

  constructor(private readonly options: RedisStateOptions) {
    this.prefix = options.prefix;
    this.client = new Redis(options.url, this.clientOptions());
    this.client.on('error', () => {}); // surfaced per command; reconnects by itself
  }

  private clientOptions(): RedisOptions {
    return {
      enableOfflineQueue: false,
      connectTimeout: this.options.connectTimeoutMs ?? 1000,
      commandTimeout: this.options.commandTimeoutMs ?? 500,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(50 * times, 1000),
      lazyConnect: false,
    };
  }

  private k(key: string): string {
    return this.prefix + key;
  }

  private async run<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw new StateUnavailableError(`shared state (redis) failed on ${what}`, { cause: err });
    }
  }

  get(key: string) {
    return this.run('get', () => this.client.get(this.k(key)));
  }
  getMany(keys: readonly string[]) {
    if (keys.length === 0) return Promise.resolve([]);
    return this.run('mget', () => this.client.mget(keys.map((k) => this.k(k))));
  }
  async set(key: string, value: string, ttlMs?: number) {
    await this.run('set', () => (ttlMs === undefined ? this.client.set(this.k(key), value) : this.client.set(this.k(key), value, 'PX', Math.max(1, Math.ceil(ttlMs)))));
  }
  async setIfAbsent(key: string, value: string, ttlMs: number) {
    const r = await this.run('set nx', () => this.client.set(this.k(key), value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'));
    return r === 'OK';
  }
  take(key: string) {
    return this.run('getdel', () => this.client.getdel(this.k(key)));
  }
  async del(key: string) {
    await this.run('del', () => this.client.del(this.k(key)));
  }
  async incr(key: string, by: number, ttlMs: number) {
    const v = await this.run('incr', () => this.client.eval(INCR_WITH_TTL, 1, this.k(key), String(by), String(Math.max(1, Math.ceil(ttlMs)))));
    return Number(v);
  }
  async ttl(key: string) {
    const v = await this.run('pttl', () => this.client.pttl(this.k(key)));
    return v === -2 ? null : v;
  }
  async keys(prefix: string) {
    const out: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.run('scan', () => this.client.scan(cursor, 'MATCH', `${this.k(prefix).replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500));
      cursor = next;
      for (const k of batch) out.push(k.slice(this.prefix.length));
    } while (cursor !== '0');
    return out;
  }
  async slidingWindowHit(key: string, limit: number, windowMs: number, now: number): Promise<WindowDecision> {
    const member = `${now}:${process.pid}:${++this.seq}:${randomBytes(4).toString('hex')}`;
    const r = (await this.run('sliding window', () => this.client.eval(SLIDING_WINDOW, 1, this.k(key), String(limit), String(windowMs), String(now), member))) as [number, number, string, string];
    const [allowed, count, oldest, newest] = r;
    // Only oldest/newest matter to the shared decision shape; rebuild a minimal sorted list.
    const hits: number[] = [];
    if (oldest !== '') hits.push(Number(oldest));
    for (let i = 1; i < count - 1; i++) hits.push(Number(oldest));
    if (newest !== '' && count > 1) hits.push(Number(newest));
    return windowDecision(allowed === 1, hits, limit, windowMs, now);
  }
  async publish(channel: string, message: string) {
    await this.run('publish', () => this.client.publish(this.k(channel), message));
  }
  async subscribe(channel: string, handler: (message: string) => void) {
    if (!this.subscriber) {
      const sub = new Redis(this.options.url, { ...this.clientOptions(), enableOfflineQueue: true, commandTimeout: undefined });
      sub.on('error', () => {});
      sub.on('message', (ch: string, message: string) => {
        for (const h of this.handlers.get(ch.slice(this.prefix.length)) ?? []) h(message);
      });
      this.subscriber = sub;
    }
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      const sub = this.subscriber;
      await this.run('subscribe', () => sub.subscribe(this.k(channel)));
    }
    set.add(handler);
    return async () => {
      set!.delete(handler);
      if (set!.size === 0) {
        this.handlers.delete(channel);
        await this.subscriber?.unsubscribe(this.k(channel)).catch(() => {});
      }
    };
  }
  async ping() {
    try {
      return (await this.client.ping()) === 'PONG';
    } catch {
      return false;
    }
  }
  async close() {
    this.client.disconnect();
    this.subscriber?.disconnect();
  }
}
