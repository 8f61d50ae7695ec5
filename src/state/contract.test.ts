import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { REDIS_URL, serviceAvailable } from '../../test/support/services.js';
import { MemoryState } from './memory.js';
import type { SharedState } from './port.js';
import { RedisState } from './redis.js';

const redisUp = await serviceAvailable('redis');
const opened: SharedState[] = [];
afterAll(async () => {
  for (const s of opened) await s.close();
});

function open(kind: 'memory' | 'redis', prefix = `t:${randomBytes(6).toString('hex')}:`): SharedState {
  const s = kind === 'memory' ? new MemoryState() : new RedisState({ url: REDIS_URL, prefix });
  opened.push(s);
  return s;
}

const kinds = [{ kind: 'memory' as const }, ...(redisUp ? [{ kind: 'redis' as const }] : [])];

/** One contract, both implementations: the scale-out must behave exactly like the embedded default. */
describe.each(kinds)('shared-state contract: $kind', ({ kind }) => {
  const s = open(kind);

  it('get/set/del, with and without expiry', async () => {
    expect(await s.get('a')).toBeNull();
    await s.set('a', '1');
    await s.set('b', '2', 60_000);
    expect(await s.get('a')).toBe('1');
    expect(await s.getMany(['a', 'b', 'c'])).toEqual(['1', '2', null]);
    expect(await s.ttl('a')).toBe(-1);
    const ttl = await s.ttl('b');
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await s.del('a');
    expect(await s.get('a')).toBeNull();
    expect(await s.ttl('a')).toBeNull();
  });

  it('values expire', async () => {
    await s.set('short', 'x', 30);
    await s.setIfAbsent('short-nx', 'x', 30);
    await new Promise((r) => setTimeout(r, 80));
    expect(await s.get('short')).toBeNull();
    expect(await s.get('short-nx')).toBeNull();
  });

  it('setIfAbsent admits exactly one of many concurrent callers', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => s.setIfAbsent('once', String(i), 10_000)));
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results.indexOf(true);
    expect(await s.get('once')).toBe(String(winner));
  });

  it('firstSeen admits an id once per space until it expires, one of many concurrent callers', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => s.firstSeen('seen', 'id-1', 10_000)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await s.firstSeen('seen', 'id-1', 10_000)).toBe(false);
    expect(await s.firstSeen('seen', 'id-2', 10_000)).toBe(true); // another id
    expect(await s.firstSeen('seen-too', 'id-1', 10_000)).toBe(true); // the same id in another space
    expect(await s.firstSeen('seen', 'short', 30)).toBe(true);
    expect(await s.firstSeen('seen', 'short', 30)).toBe(false);
    await new Promise((r) => setTimeout(r, 80));
    expect(await s.firstSeen('seen', 'short', 30)).toBe(true); // expired: recorded afresh
    expect(await s.firstSeen('seen', 'short', 30)).toBe(false);
    expect(await s.firstSeen('seen', 'id-1', 10_000)).toBe(false); // an earlier, longer-lived id is still there
  });

  it('firstSeen refuses a space holding a colon: two spaces\' ids would meet in Redis', async () => {
    expect(await s.firstSeen('sp', 'a:b', 10_000)).toBe(true);
    // As a key, 'sp:a' + ':' + 'b' is 'sp' + ':' + 'a:b': the same id. Refused everywhere alike.
    await expect(s.firstSeen('sp:a', 'b', 10_000)).rejects.toThrow(RangeError);
    await expect(s.firstSeen('', 'b', 10_000)).rejects.toThrow(RangeError);
  });

  it('firstSeenHeld sets an absent marker to now, else answers its value, and records the id once', async () => {
    expect(await s.firstSeenHeld('held', 'id-1', 10_000, 'held:marker', 1_000)).toEqual({ first: true, heldSince: 1_000 });
    expect(await s.get('held:marker')).toBe('1000');
    // The marker stays; a later now does not move it.
    expect(await s.firstSeenHeld('held', 'id-1', 10_000, 'held:marker', 2_000)).toEqual({ first: false, heldSince: 1_000 });
    expect(await s.firstSeen('held', 'id-1', 10_000)).toBe(false); // the same memory as firstSeen's
    // Lost (as Redis restarted empty leaves it): the marker is set again, to the new now.
    await s.del('held:marker');
    expect(await s.firstSeenHeld('held', 'id-2', 10_000, 'held:marker', 3_000)).toEqual({ first: true, heldSince: 3_000 });
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => s.firstSeenHeld('held', 'id-3', 10_000, 'held:marker', 4_000 + i)));
    expect(all.filter((r) => r.first)).toHaveLength(1);
    expect(new Set(all.map((r) => r.heldSince))).toEqual(new Set([3_000]));
    await expect(s.firstSeenHeld('held', 'id-4', 10_000, 'held:marker', Number.NaN)).rejects.toThrow(RangeError);
  });

  it('take returns a value once', async () => {
    await s.set('nonce', 'addr', 10_000);
    const taken = await Promise.all([s.take('nonce'), s.take('nonce'), s.take('nonce')]);
    expect(taken.filter((v) => v === 'addr')).toHaveLength(1);
    expect(await s.get('nonce')).toBeNull();
  });

  it('incr is atomic and sets the expiry once, at creation', async () => {
    const values = await Promise.all(Array.from({ length: 40 }, () => s.incr('ctr', 1, 60_000)));
    expect(new Set(values).size).toBe(40);
    expect(Math.max(...values)).toBe(40);
    expect(await s.incr('ctr', 5, 1)).toBe(45); // a later ttl does not shorten the first
    expect(await s.ttl('ctr')).toBeGreaterThan(50_000);
  });

  it('incr gives a counter that has no expiry the one it asks for', async () => {
    await s.set('bare', '7');
    expect(await s.incr('bare', 1, 60_000)).toBe(8);
    const ttl = await s.ttl('bare');
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('incr refuses a value that is not an integer, never counting from NaN', async () => {
    for (const stored of ['abc', '1.5', '', ' 7', '0x10', '1e3']) {
      await s.set('nan-ctr', stored, 60_000);
      await expect(s.incr('nan-ctr', 1, 60_000), JSON.stringify(stored)).rejects.toMatchObject({ name: 'StateUnavailableError' });
      expect(await s.get('nan-ctr')).toBe(stored); // left as it was
    }
    await s.del('nan-ctr');
    for (const by of [1.5, Number.NaN, Number.POSITIVE_INFINITY]) await expect(s.incr('nan-ctr', by, 60_000), String(by)).rejects.toThrow(RangeError);
    expect(await s.get('nan-ctr')).toBeNull();
    expect(await s.incr('nan-ctr', -3, 60_000)).toBe(-3);
    expect(await s.incr('nan-ctr', 0, 60_000)).toBe(-3);
  });

  it('incr refuses to count past the integers a number holds exactly, leaving the value as it was', async () => {
    for (const [stored, by] of [
      [String(Number.MAX_SAFE_INTEGER), 1],
      [String(-Number.MAX_SAFE_INTEGER), -1],
      ['9007199254740990', 5],
    ] as const) {
      await s.set('edge-ctr', stored, 60_000);
      await expect(s.incr('edge-ctr', by, 60_000), `${stored} + ${by}`).rejects.toMatchObject({ name: 'StateUnavailableError' });
      expect(await s.get('edge-ctr')).toBe(stored); // not moved past it, nor rounded
    }
    await s.set('edge-ctr', '9007199254740990', 60_000);
    expect(await s.incr('edge-ctr', 1, 60_000)).toBe(Number.MAX_SAFE_INTEGER); // up to the last one, exactly
  });

  it('keys lists by prefix', async () => {
    await s.set('blk:1.2.3.4', 'x', 60_000);
    await s.set('blk:5.6.7.8', 'y', 60_000);
    await s.set('other', 'z', 60_000);
    expect((await s.keys('blk:')).sort()).toEqual(['blk:1.2.3.4', 'blk:5.6.7.8']);
    // Only values (what get reads): not a sliding-window log nor an index set under the prefix.
    await s.slidingWindowHit('blk:log', 5, 60_000);
    await s.indexAdd('blk:index', 'm');
    expect((await s.keys('blk:')).sort()).toEqual(['blk:1.2.3.4', 'blk:5.6.7.8']);
    for (const k of await s.keys('blk:')) expect(await s.get(k)).not.toBeNull();
  });

  it('setMax keeps the larger number, whatever order racing writes land in', async () => {
    await s.setMax('flag', 3, 60_000);
    await s.setMax('flag', 2, 60_000);
    expect(await s.get('flag')).toBe('3');
    await s.setMax('flag', 10, 60_000);
    expect(await s.get('flag')).toBe('10');
    await Promise.all([5, 12, 7, 11].map((v) => s.setMax('flag2', v, 60_000)));
    expect(await s.get('flag2')).toBe('12');
    expect(await s.ttl('flag2')).toBeGreaterThan(50_000);
  });

  it('holdAtLeast sets an absent key, only ever extends an expiry, and keeps the value', async () => {
    await s.holdAtLeast('hold', 'first', 10_000);
    expect(await s.get('hold')).toBe('first');
    await s.holdAtLeast('hold', 'second', 60_000);
    expect(await s.get('hold')).toBe('first');
    expect(await s.ttl('hold')).toBeGreaterThan(50_000);
    await s.holdAtLeast('hold', 'third', 1_000);
    expect(await s.ttl('hold')).toBeGreaterThan(50_000);
    await s.set('forever', 'x');
    await s.holdAtLeast('forever', 'y', 1_000);
    expect([await s.get('forever'), await s.ttl('forever')]).toEqual(['x', -1]);
  });

  it('setMax stores the number as written, however large, and refuses one that is not finite', async () => {
    await s.setMax('big', 1_764_432_930_123_456, 60_000); // µs since the epoch: 16 digits
    expect(await s.get('big')).toBe('1764432930123456');
    await s.setMax('big', 1_764_432_930_123_455, 60_000);
    expect(await s.get('big')).toBe('1764432930123456');
    await s.setMax('big', Number.MAX_SAFE_INTEGER, 60_000);
    expect(await s.get('big')).toBe(String(Number.MAX_SAFE_INTEGER));
    await s.setMax('frac', 1.5, 60_000);
    await s.setMax('frac', 1.25, 60_000);
    expect(await s.get('frac')).toBe('1.5');
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      await expect(s.setMax('frac', bad, 60_000), String(bad)).rejects.toThrow(RangeError);
      await expect(s.setMax('fresh', bad, 60_000), String(bad)).rejects.toThrow(RangeError);
    }
    expect(await s.get('frac')).toBe('1.5');
    expect(await s.get('fresh')).toBeNull();
  });

  it('an index set lists the members whose key lives, and forgets the others', async () => {
    await s.set('item:a', '1');
    await s.set('item:b', '2', 30);
    await s.set('item:c', '3');
    for (const m of ['a', 'b', 'c', 'ghost']) await s.indexAdd('items', m);
    await s.indexAdd('items', 'a'); // a set: no duplicate
    await new Promise((r) => setTimeout(r, 80)); // item:b expires
    await s.del('item:c');
    expect((await s.indexLive('items', 'item:')).sort()).toEqual(['a']);
    // The dead members are gone from the set: a key of theirs made later must be indexed again.
    await s.set('item:b', 'again');
    expect(await s.indexLive('items', 'item:')).toEqual(['a']);
    await s.indexAdd('items', 'b');
    expect((await s.indexLive('items', 'item:')).sort()).toEqual(['a', 'b']);
    await s.indexRemove('items', 'a');
    expect(await s.indexLive('items', 'item:')).toEqual(['b']);
    expect(await s.indexLive('no-such-index', 'item:')).toEqual([]);
  });

  it('publish reaches every subscriber; unsubscribe stops delivery', async () => {
    const got: string[] = [];
    const other = open(kind, (s as unknown as { prefix?: string }).prefix);
    const stop = await s.subscribe('chan', (m) => got.push(`a:${m}`));
    const stop2 = await other.subscribe('chan', (m) => got.push(`b:${m}`));
    await s.publish('chan', 'hello');
    await waitFor(() => got.length === (kind === 'memory' ? 1 : 2));
    expect(got).toContain('a:hello');
    if (kind === 'redis') expect(got).toContain('b:hello'); // across connections, as across processes
    await stop();
    await stop2();
    await s.publish('chan', 'after');
    await new Promise((r) => setTimeout(r, 50));
    expect(got.some((g) => g.endsWith('after'))).toBe(false);
  });

  it('a subscriber that throws neither stops delivery to the others nor escapes (it would crash the process)', async () => {
    const got: string[] = [];
    const escaped: unknown[] = [];
    const onUncaught = (err: unknown) => escaped.push(err);
    process.on('uncaughtException', onUncaught);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const stop = await s.subscribe('throwing', () => {
        throw new Error('handler failed');
      });
      const stop2 = await s.subscribe('throwing', (m) => got.push(m));
      await s.publish('throwing', 'still delivered');
      await waitFor(() => got.length === 1);
      await new Promise((r) => setTimeout(r, 20));
      expect(got).toEqual(['still delivered']);
      expect(escaped).toEqual([]);
      expect(warnings.some((w) => w.includes('handler failed'))).toBe(true);
      await stop();
      await stop2();
    } finally {
      process.off('uncaughtException', onUncaught);
      process.off('warning', onWarning);
    }
  });

  it('rounds a TTL up to a whole ms (at least 1) and refuses one that is not finite, alike everywhere', async () => {
    await s.set('frac', 'v', 60_000.4);
    expect(Number.isInteger(await s.ttl('frac'))).toBe(true);
    await s.set('zero', 'v', 0);
    await s.set('neg', 'v', -5);
    expect(await s.firstSeen('zero-space', 'id', 0)).toBe(true);
    // Lives 1 ms, as PX 1 does: not gone before it was written, nor longer.
    await new Promise((r) => setTimeout(r, 20));
    expect(await s.get('zero')).toBeNull();
    expect(await s.get('neg')).toBeNull();
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      await expect(s.set('inf', 'v', bad), `set ${bad}`).rejects.toThrow(/ttl/i);
      await expect(s.setIfAbsent('inf', 'v', bad), `setIfAbsent ${bad}`).rejects.toThrow(/ttl/i);
      await expect(s.incr('inf', 1, bad), `incr ${bad}`).rejects.toThrow(/ttl/i);
      await expect(s.setMax('inf', 1, bad), `setMax ${bad}`).rejects.toThrow(/ttl/i);
      await expect(s.firstSeen('inf-space', `id-${bad}`, bad), `firstSeen ${bad}`).rejects.toThrow(/ttl/i);
      expect(await s.firstSeen('inf-space', `id-${bad}`, 60_000)).toBe(true); // nothing recorded for ever
      expect(await s.get('inf')).toBeNull(); // nothing written that would never expire
    }
  });

  it('sliding window: a fractional window works, and arguments it cannot honour are refused before anything is recorded', async () => {
    const t = 1_000_000;
    expect((await s.slidingWindowHit('sw-frac', 1, 100.5, t)).allowed).toBe(true);
    expect((await s.slidingWindowHit('sw-frac', 1, 100.5, t + 100)).allowed).toBe(false);
    expect((await s.slidingWindowHit('sw-frac', 1, 100.5, t + 101)).allowed).toBe(true);
    for (const [limit, windowMs, now] of [
      [1.5, 1000, t],
      [-1, 1000, t],
      [Number.NaN, 1000, t],
      [2, 0, t],
      [2, -5, t],
      [2, Number.NaN, t],
      [2, Number.POSITIVE_INFINITY, t],
      [2, 1000, Number.NaN],
    ] as const) {
      await expect(s.slidingWindowHit('sw-bad', limit, windowMs, now), `${limit} ${windowMs} ${now}`).rejects.toThrow(RangeError);
    }
    const d = await s.slidingWindowHit('sw-bad', 2, 1000, t);
    expect(d.count).toBe(1); // no refused call recorded a hit
  });

  it('sliding window: after a refusal has let every hit leave, an earlier time never admits past the limit', async () => {
    const key = `sw-back-${randomBytes(4).toString('hex')}`;
    expect((await s.slidingWindowHit(key, 1, 100, 1000)).allowed).toBe(true);
    await s.set('sw-back-hold', '1', 60_000);
    expect((await s.slidingWindowHit(key, 1, 100, 2000, { holdKeys: ['sw-back-hold'] })).allowed).toBe(false); // prunes the hit at 1000
    await s.del('sw-back-hold');
    const late = await s.slidingWindowHit(key, 1, 100, 900); // the clock stepped back
    expect(late.allowed).toBe(true);
    expect(late.at).toBe(900); // the hit at 1000 has left the log: nothing later to count at
    const next = await s.slidingWindowHit(key, 1, 100, 950);
    expect(next.allowed).toBe(false); // one hit in (850, 950] already
    expect(next.count).toBe(1);
  });

  it('answers ping', async () => {
    expect(await s.ping()).toBe(true);
  });
});

describe.runIf(redisUp)('redis firstSeen', () => {
  it('is a set-if-absent of the key space:id, so processes of an earlier version share its memory', async () => {
    const s = open('redis') as RedisState;
    await s.whenReady();
    await s.setIfAbsent('replay:key_1:abc', '1', 10_000); // written the earlier way
    expect(await s.firstSeen('replay', 'key_1:abc', 10_000)).toBe(false);
    expect(await s.firstSeen('replay', 'key_1:def', 10_000)).toBe(true);
    expect(await s.setIfAbsent('replay:key_1:def', '1', 10_000)).toBe(false);
    const ttl = await s.ttl('replay:key_1:def');
    expect(ttl).toBeGreaterThan(9_000);
  });
});

describe.runIf(redisUp)('redis keys', () => {
  it('lists each key once although SCAN may return a key more than once', async () => {
    const s = open('redis') as RedisState;
    const client = (s as unknown as { client: { scan: (...args: unknown[]) => Promise<[string, string[]]> } }).client;
    const pages: [string, string[]][] = [
      ['7', [`${s.prefix}blk:a`, `${s.prefix}blk:b`]],
      ['0', [`${s.prefix}blk:b`, `${s.prefix}blk:c`]], // SCAN repeats keys across a rehash
    ];
    client.scan = async () => pages.shift()!;
    expect((await s.keys('blk:')).sort()).toEqual(['blk:a', 'blk:b', 'blk:c']);
  });
});

describe.runIf(redisUp)('redis state when Redis is unreachable', () => {
  it('rejects at once with StateUnavailableError instead of queueing, and ping says false', async () => {
    const dead = new RedisState({ url: 'redis://127.0.0.1:1', prefix: 'dead:' });
    opened.push(dead);
    const started = Date.now();
    await expect(dead.get('x')).rejects.toMatchObject({ name: 'StateUnavailableError' });
    await expect(dead.setIfAbsent('x', '1', 1000)).rejects.toMatchObject({ name: 'StateUnavailableError' });
    expect(await dead.ping()).toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
