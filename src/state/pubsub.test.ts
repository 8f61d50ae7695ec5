import { randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { REDIS_URL, serviceAvailable } from '../../test/support/services.js';
import { MemoryState } from './memory.js';
import { RedisState } from './redis.js';

const redisUp = await serviceAvailable('redis');

describe('publish/subscribe', () => {
  it('MemoryState delivers to every subscriber', async () => {
    const s = new MemoryState();
    const got: string[] = [];
    await s.subscribe('c', (m) => got.push(`1:${m}`));
    const off = await s.subscribe('c', (m) => got.push(`2:${m}`));
    await s.publish('c', 'x');
    await vi.waitFor(() => expect(got.sort()).toEqual(['1:x', '2:x']));
    await off();
    await s.publish('c', 'y');
    await vi.waitFor(() => expect(got).toContain('1:y'));
    expect(got).not.toContain('2:y');
    await s.close();
  });

  it.runIf(redisUp)('RedisState: subscriptions made before the connection is ready are not lost', async () => {
    // Regression: SUBSCRIBE sent before ioredis's ready check put the connection in subscriber
    // mode, the check (INFO) failed, and the subscription silently never happened.
    // The failure depended on when the second SUBSCRIBE went out relative to the connection's
    // ready check: try a range of delays.
    for (const delayMs of [0, 1, 3, 6, 10, 20, 30, 45]) {
      const prefix = `t:ps:${randomBytes(4).toString('hex')}:`;
      const [a, b, c] = [0, 1, 2].map(() => new RedisState({ url: REDIS_URL, prefix }));
      const got: string[] = [];
      try {
        await Promise.all([
          a!.subscribe('one', (m) => got.push(`a1:${m}`)),
          new Promise((r) => setTimeout(r, delayMs)).then(() => a!.subscribe('two', (m) => got.push(`a2:${m}`))),
          b!.subscribe('one', (m) => got.push(`b1:${m}`)),
          b!.subscribe('one', (m) => got.push(`b1bis:${m}`)),
        ]);
        await c!.whenReady();
        await c!.publish('one', 'x');
        await c!.publish('two', 'y');
        await vi.waitFor(() => expect(got.sort()).toEqual(['a1:x', 'a2:y', 'b1:x', 'b1bis:x']));
      } finally {
        await Promise.all([a!.close(), b!.close(), c!.close()]);
      }
    }
  });

  it.runIf(redisUp)('RedisState: unsubscribing returns within the deadline when Redis does not answer', async () => {
    const s = new RedisState({ url: REDIS_URL, prefix: `t:ps:${randomBytes(4).toString('hex')}:` });
    try {
      const stop = await s.subscribe('c', () => {});
      // A connection that still looks ready but gets no answer (a half-open TCP connection, a
      // stalled server): the subscriber connection has no command timeout of its own.
      const sub = (s as unknown as { subscriber: { unsubscribe: () => Promise<unknown> } }).subscriber;
      sub.unsubscribe = () => new Promise(() => {});
      const started = Date.now();
      await stop();
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      await s.close();
    }
  });
});
