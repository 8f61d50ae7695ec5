import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { deliver, expiryMs, onceSpace, StateUnavailableError, windowArgs, type SharedState, type WindowDecision, type WindowOptions } from './port.js';

/**
 * INCRBY, refused past the integers a JS number holds exactly (as in MemoryState): Redis would
 * count on to 2^63, and the reply would reach the caller rounded. The step is undone in the same
 * atomic script (its result, a Lua double, still compares exactly against 2^53 - 1).
 */
const INCR_WITH_TTL = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v > 9007199254740991 or v < -9007199254740991 then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return redis.error_reply('increment would overflow')
end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`;

/**
 * KEYS[1] := max(its number, ARGV[1]), expiry ARGV[2] ms. The winner is stored as the string it was
 * written as: Lua's tostring keeps 14 significant digits (1764432930123456 became
 * '1.7644329301235e+15', a different and larger number).
 */
const SET_MAX = `
local raw = redis.call('GET', KEYS[1])
local current = raw and tonumber(raw) or nil
local winner = ARGV[1]
if current ~= nil and current > tonumber(ARGV[1]) then winner = raw end
redis.call('SET', KEYS[1], winner, 'PX', ARGV[2])`;

/** See SharedState.holdAtLeast: ARGV the value and the TTL (ms). */
const HOLD_AT_LEAST = `
local left = redis.call('PTTL', KEYS[1])
if left == -2 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif left >= 0 and left < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end`;

/** The members of set KEYS[1] whose key ARGV[1]..member exists; the others are removed, atomically. */
const INDEX_LIVE = `
local live = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. m) == 1 then live[#live + 1] = m else redis.call('SREM', KEYS[1], m) end
end
return live`;

/**
 * firstSeen with its memory's marker (see SharedState.firstSeenHeld): KEYS[1] the marker, KEYS[2]
 * the id's key; ARGV the TTL (ms) and the caller's now. Returns {1 first | 0 seen, marker value}.
 */
const FIRST_SEEN_HELD = `
local held = redis.call('GET', KEYS[1])
if not held then
  held = ARGV[2]
  redis.call('SET', KEYS[1], held)
end
local first = redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX')
if first then return {1, held} end
return {0, held}`;

/**
 * One sliding-window decision in one round trip, atomic across processes. KEYS[1] is the hit log
 * (a sorted set scored by ms), KEYS[2..] are hold keys. ARGV: limit, window ms, decision time ms
 * ('' = Redis TIME, one clock for all processes), a unique member. Time never runs backwards for a
 * key: a decision earlier than the newest hit counts at the newest hit, and one more than a window
 * earlier first moves the whole log back by the difference (as MemoryState does), so that the
 * window then runs on the clock that stepped back.
 */
const SLIDING_WINDOW = `
local key, limit, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local at
if ARGV[3] == '' then
  local t = redis.call('TIME')
  at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  at = tonumber(ARGV[3])
end
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
local newestAt = newest[2] and tonumber(newest[2])
if newestAt and newestAt > at then
  if newestAt - at > window then
    local back = newestAt - at
    local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do redis.call('ZADD', key, tonumber(all[i + 1]) - back, all[i]) end
    newestAt = at
  else
    at = newestAt
  end
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', at - window)
local count = redis.call('ZCARD', key)
local heldKey, heldValue, retry = '', '', 0
if #KEYS > 1 then
  local held = redis.call('MGET', unpack(KEYS, 2))
  for i = 1, #KEYS - 1 do
    if held[i] then
      heldKey, heldValue = KEYS[i + 1], held[i]
      retry = redis.call('PTTL', heldKey)
      if retry <= 0 then retry = window end
      break
    end
  end
end
local allowed = 0
if heldKey == '' and count < limit then
  redis.call('ZADD', key, at, ARGV[4])
  -- The log expires on Redis's clock. With a caller clock, keep it a minute longer so that a
  -- pause between the two clocks never drops hits the caller's clock still counts.
  if ARGV[3] == '' then redis.call('PEXPIRE', key, window) else redis.call('PEXPIRE', key, window + 60000) end
  count, allowed, newestAt = count + 1, 1, at
end
local nextFree, reset = 0, 0
if count > 0 then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  nextFree = math.max(1, tonumber(oldest[2]) + window - at)
  reset = math.max(1, newestAt + window - at)
end
if heldKey == '' and count >= limit then
  if limit > 0 then
    local b = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    retry = math.max(1, tonumber(b[2]) + window - at)
  else
    retry = window
  end
end
return {allowed, count, retry, nextFree, reset, at, heldKey, heldValue}`;

type WindowReply = [number, number, number, number, number, number, string, string];

interface ScriptedRedis extends Redis {
  mdSlidingWindow(numKeys: number, ...args: string[]): Promise<WindowReply>;
  mdIncrWithTtl(key: string, by: string, ttlMs: string): Promise<number>;
  mdIndexLive(key: string, prefix: string): Promise<string[]>;
  mdSetMax(key: string, value: string, ttlMs: string): Promise<null>;
  mdHoldAtLeast(key: string, value: string, ttlMs: string): Promise<null>;
  mdFirstSeenHeld(heldKey: string, key: string, ttlMs: string, now: string): Promise<[number, string]>;
}

/** Longest a subscribe call waits for an unreachable Redis before returning (the subscription stays queued). */
const SUBSCRIBE_WAIT_MS = 500;

/** Waits for `p` at most `ms` (then goes on; `p` may still settle later). */
async function boundedWait(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  try {
    await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

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
  private readonly client: ScriptedRedis;
  private subscriber: Redis | undefined;
  private subscriberReady: Promise<void> | undefined;
  private readonly channels = new Map<string, Promise<void>>();
  private readonly handlers = new Map<string, Set<(m: string) => void>>();
  readonly prefix: string;
  private seq = 0;
  /** Makes hit-log members unique across processes (pids repeat across containers). */
  private readonly instance = randomBytes(8).toString('base64url');

  constructor(private readonly options: RedisStateOptions) {
    this.prefix = options.prefix;
    this.client = new Redis(options.url, this.clientOptions()) as ScriptedRedis;
    this.client.on('error', () => {}); // surfaced per command; reconnects by itself
    // EVALSHA with a transparent reload on NOSCRIPT: the script body is not resent on every call.
    this.client.defineCommand('mdSlidingWindow', { lua: SLIDING_WINDOW });
    this.client.defineCommand('mdIncrWithTtl', { lua: INCR_WITH_TTL, numberOfKeys: 1 });
    this.client.defineCommand('mdIndexLive', { lua: INDEX_LIVE, numberOfKeys: 1 });
    this.client.defineCommand('mdSetMax', { lua: SET_MAX, numberOfKeys: 1 });
    this.client.defineCommand('mdHoldAtLeast', { lua: HOLD_AT_LEAST, numberOfKeys: 1 });
    this.client.defineCommand('mdFirstSeenHeld', { lua: FIRST_SEEN_HELD, numberOfKeys: 2 });
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
    const ms = ttlMs === undefined ? undefined : expiryMs(ttlMs);
    await this.run('set', () => (ms === undefined ? this.client.set(this.k(key), value) : this.client.set(this.k(key), value, 'PX', ms)));
  }
  async setIfAbsent(key: string, value: string, ttlMs: number) {
    const ms = expiryMs(ttlMs);
    const r = await this.run('set nx', () => this.client.set(this.k(key), value, 'PX', ms, 'NX'));
    return r === 'OK';
  }
  async firstSeen(space: string, id: string, ttlMs: number) {
    return this.setIfAbsent(`${onceSpace(space)}:${id}`, '1', ttlMs);
  }
  async firstSeenHeld(space: string, id: string, ttlMs: number, heldKey: string, now: number) {
    const ms = expiryMs(ttlMs);
    const key = `${onceSpace(space)}:${id}`;
    if (!Number.isSafeInteger(now) || now <= 0) throw new RangeError(`shared state: firstSeenHeld now must be a positive integer, got ${String(now)}`);
    const [first, held] = await this.run('first seen held', () => this.client.mdFirstSeenHeld(this.k(heldKey), this.k(key), String(ms), String(now)));
    return { first: first === 1, heldSince: Number(held) };
  }
  take(key: string) {
    return this.run('getdel', () => this.client.getdel(this.k(key)));
  }
  async del(key: string) {
    await this.run('del', () => this.client.del(this.k(key)));
  }
  async setMax(key: string, value: number, ttlMs: number) {
    const ms = expiryMs(ttlMs);
    if (!Number.isFinite(value)) throw new RangeError(`shared state: setMax value must be a finite number, got ${String(value)}`);
    await this.run('setmax', () => this.client.mdSetMax(this.k(key), String(value), String(ms)));
  }
  async incr(key: string, by: number, ttlMs: number) {
    const ms = expiryMs(ttlMs);
    if (!Number.isSafeInteger(by)) throw new RangeError(`shared state: incr by must be an integer, got ${String(by)}`);
    const v = await this.run('incr', () => this.client.mdIncrWithTtl(this.k(key), String(by), String(ms)));
    return Number(v);
  }
  async holdAtLeast(key: string, value: string, ttlMs: number) {
    const ms = expiryMs(ttlMs);
    await this.run('hold', () => this.client.mdHoldAtLeast(this.k(key), value, String(ms)));
  }
  async ttl(key: string) {
    const v = await this.run('pttl', () => this.client.pttl(this.k(key)));
    return v === -2 ? null : v;
  }
  /**
   * SCAN may return a key more than once (across a rehash): each is listed once. Only string keys
   * (values get can read), as MemoryState lists only its values, not hit logs or index sets.
   */
  async keys(prefix: string) {
    const out = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await this.run('scan', () => this.client.scan(cursor, 'MATCH', `${this.k(prefix).replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500, 'TYPE', 'string'));
      cursor = next;
      for (const k of batch) out.add(k.slice(this.prefix.length));
    } while (cursor !== '0');
    return [...out];
  }
  async indexAdd(key: string, member: string) {
    await this.run('sadd', () => this.client.sadd(this.k(key), member));
  }
  async indexRemove(key: string, member: string) {
    await this.run('srem', () => this.client.srem(this.k(key), member));
  }
  async indexLive(key: string, prefix: string) {
    return this.run('index', () => this.client.mdIndexLive(this.k(key), this.k(prefix)));
  }
  async slidingWindowHit(key: string, requestedLimit: number, requestedWindowMs: number, requestedNow?: number, options: WindowOptions = {}): Promise<WindowDecision> {
    const { limit, windowMs, now } = windowArgs(requestedLimit, requestedWindowMs, requestedNow);
    const member = `${this.instance}:${++this.seq}`;
    const keys = [this.k(key), ...(options.holdKeys ?? []).map((h) => this.k(h))];
    const args = [String(limit), String(windowMs), now === undefined ? '' : String(now), member];
    const [allowed, count, retryAfterMs, nextFreeMs, resetMs, at, heldKey, heldValue] = await this.run('sliding window', () => this.client.mdSlidingWindow(keys.length, ...keys, ...args));
    const decision: WindowDecision = { allowed: allowed === 1, count, retryAfterMs, nextFreeMs, resetMs, at };
    if (heldKey !== '') decision.held = { key: heldKey.slice(this.prefix.length), value: heldValue };
    return decision;
  }
  async publish(channel: string, message: string) {
    await this.run('publish', () => this.client.publish(this.k(channel), message));
  }
  /**
   * The subscriber connection, created on first use. SUBSCRIBE is sent only once it is ready:
   * ioredis fails its own ready check (INFO) on a connection that entered subscriber mode first,
   * which used to lose early subscriptions. ioredis re-subscribes by itself after a reconnect.
   */
  private subscriberConnection(): { sub: Redis; ready: Promise<void> } {
    if (!this.subscriber) {
      const sub = new Redis(this.options.url, { ...this.clientOptions(), enableOfflineQueue: true, commandTimeout: undefined, maxRetriesPerRequest: null });
      sub.on('error', () => {});
      sub.on('message', (ch: string, message: string) => {
        const channel = ch.slice(this.prefix.length);
        deliver([...(this.handlers.get(channel) ?? [])], channel, message);
      });
      this.subscriber = sub;
      this.subscriberReady = new Promise<void>((resolve) => sub.once('ready', () => resolve()));
    }
    return { sub: this.subscriber, ready: this.subscriberReady! };
  }

  /** Resolves once `channel` is subscribed, or after a bounded wait while Redis is unreachable. */
  async subscribe(channel: string, handler: (message: string) => void) {
    const { sub, ready } = this.subscriberConnection();
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
    }
    set.add(handler);
    let active = this.channels.get(channel);
    if (!active) {
      const pending = ready.then(() => sub.subscribe(this.k(channel))).then(() => undefined);
      pending.catch(() => this.channels.delete(channel));
      active = pending;
      this.channels.set(channel, active);
    }
    // Wait for the subscription while Redis answers; when it does not, return after a bounded wait
    // so start-up never hangs: the subscriber connection keeps the SUBSCRIBE queued, sends it when
    // Redis comes back, and re-subscribes after every reconnect.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'waiting'>((resolve) => {
      timer = setTimeout(() => resolve('waiting'), SUBSCRIBE_WAIT_MS);
      timer.unref();
    });
    try {
      await Promise.race([active, deadline]);
    } catch (err) {
      set.delete(handler);
      throw new StateUnavailableError('shared state (redis) failed on subscribe', { cause: err });
    } finally {
      clearTimeout(timer);
    }
    return async () => {
      set!.delete(handler);
      if (set!.size === 0 && this.handlers.get(channel) === set) {
        this.handlers.delete(channel);
        this.channels.delete(channel);
        // Only while connected: with Redis away an UNSUBSCRIBE would wait in the queue forever. And
        // for a bounded time: the subscriber connection has no command timeout, and one that still
        // looks ready may never answer (a half-open connection). No handler is left to deliver to.
        if (this.subscriber?.status === 'ready') await boundedWait(this.subscriber.unsubscribe(this.k(channel)).catch(() => {}), SUBSCRIBE_WAIT_MS);
      }
    };
  }
  /**
   * Resolves once connected (commands issued before that are refused, not queued), or rejects with
   * StateUnavailableError after `timeoutMs`.
   */
  whenReady(timeoutMs = 2000): Promise<void> {
    if (this.client.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        reject(new StateUnavailableError(`shared state (redis) not ready after ${timeoutMs} ms`));
      }, timeoutMs);
      this.client.once('ready', onReady);
    });
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
