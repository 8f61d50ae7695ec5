import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { ok } from '../../src/errors/registry.js';
import { MemoryState } from '../../src/state/memory.js';
import type { SharedState } from '../../src/state/port.js';
import { OrderThread } from '../../src/trading/orders/thread.js';
import { REDIS_URL, serviceAvailable } from '../support/services.js';
import { openSharedTestStore } from '../support/stores.js';

/** The order thread's proxy on its own (no server): starting, dying, restarting and closing. */
describe('the order thread proxy', () => {
  let shared: Awaited<ReturnType<typeof openSharedTestStore>>;
  const threads: OrderThread[] = [];
  const hooks = {
    report: { committed: () => {}, rebuilt: () => {}, retried: () => {} },
    halts: async (markets: string[]) => new Map(markets.map((m) => [m, { halted: false }])),
    roleLimits: { trader: 1n, admin: 1n },
    maxOpenOrders: 200,
  };
  const start = (options: { state?: SharedState; redis?: { url: string; prefix: string }; store?: typeof shared.options } = {}) => {
    const thread = new OrderThread(
      {
        config: loadConfig({ MOONDRAFT_DATA_DIR: shared.dataDir }),
        store: options.store ?? shared.options,
        log: pino({ level: 'silent' }),
        now: () => Date.now(),
        systemClock: true,
        state: options.state ?? new MemoryState(),
        redis: options.redis,
      },
      hooks,
    );
    threads.push(thread);
    return thread;
  };
  /** Whether `p` settles within `ms`. */
  const settles = (p: Promise<unknown>, ms: number) =>
    Promise.race([p.then(() => true, () => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

  /** Store options the thread cannot open: its data dir lies under a plain file. */
  let broken: typeof shared.options;
  beforeAll(async () => {
    shared = await openSharedTestStore('sqlite');
    writeFileSync(path.join(shared.dataDir, 'not-a-dir'), '');
    broken = { ...shared.options, dataDir: path.join(shared.dataDir, 'not-a-dir', 'data') };
  });
  afterAll(async () => {
    // Stop whatever a failed test left running.
    for (const t of threads) await Promise.race([t.close(1000), new Promise((r) => setTimeout(r, 2000))]);
    await shared.close();
  });

  it('closes while a dead thread waits to be replaced (a shutdown during the restart delay does not hang)', async () => {
    const thread = start();
    await thread.started();
    expect(await thread.submit({ kind: 'refresh', markets: [] })).toEqual(ok(undefined));
    const restarted = thread.restart();
    restarted.catch(() => {});
    // The old thread is gone; the new one starts a second later.
    await new Promise((r) => setTimeout(r, 200));
    expect(await settles(thread.close(), 3000)).toBe(true);
  });

  it('a thread that cannot start exits: closing it (as a failed start does) takes no grace period', async () => {
    if (!(await serviceAvailable('redis'))) return;
    // The thread opens its own Redis connection (which alone keeps a thread alive), then its store.
    const thread = start({ state: { kind: 'redis' } as unknown as SharedState, redis: { url: REDIS_URL, prefix: 'md-test-lifecycle:' }, store: broken });
    await expect(thread.started()).rejects.toThrow();
    // What createTrading does then: close it. Without the thread exiting, this waited for the 30 s grace.
    expect(await settles(thread.close(), 3000)).toBe(true);
  });

  it('a replacement that cannot start does not leave commands hanging', async () => {
    if (!(await serviceAvailable('redis'))) return;
    const thread = start({ state: { kind: 'redis' } as unknown as SharedState, redis: { url: REDIS_URL, prefix: 'md-test-lifecycle:' } });
    await thread.started();
    // The next thread will not open its store (the database went away, say).
    (thread as unknown as { options: { store: unknown } }).options.store = broken;
    await expect(thread.restart()).rejects.toThrow();
    // A command now either is refused (503) or fails; it does not wait forever.
    expect(await settles(thread.submit({ kind: 'refresh', markets: [] }), 3000)).toBe(true);
    expect(await settles(thread.close(), 3000)).toBe(true);
  });

  it('a command that cannot be copied to the thread fails at once, and the thread serves on', async () => {
    const thread = start();
    await thread.started();
    const uncopyable = { kind: 'refresh', markets: [], callback: () => 1 } as unknown as Parameters<OrderThread['submit']>[0];
    await expect(thread.submit(uncopyable)).rejects.toThrow();
    expect(await thread.submit({ kind: 'refresh', markets: [] })).toEqual(ok(undefined));
    expect(await settles(thread.close(), 3000)).toBe(true);
  });

  it('takes no command before it serves: one sent while it starts is refused (503), not left waiting on it', async () => {
    const thread = start();
    // The thread cannot have said it is ready yet: that takes a message, after this turn.
    expect(await thread.submit({ kind: 'refresh', markets: [] })).toMatchObject({ ok: false, code: 'service_unavailable' });
    await thread.started();
    expect(await thread.submit({ kind: 'refresh', markets: [] })).toEqual(ok(undefined));
    expect(await settles(thread.close(), 3000)).toBe(true);
  });
});
