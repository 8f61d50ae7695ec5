import { describe, expect, it } from 'vitest';
import { StateUnavailableError } from '../../state/port.js';
import { errorFromWire, errorToWire, yieldTo } from './thread.js';

describe('the order thread’s helpers', () => {
  it('yieldTo: at once with no waiter; until the last waiter is through; never longer than its bound', async () => {
    const waiters = new Int32Array(new SharedArrayBuffer(4));
    let done = false;
    await yieldTo(waiters).then(() => (done = true));
    expect(done).toBe(true);

    Atomics.store(waiters, 0, 2);
    let released = false;
    const waiting = yieldTo(waiters, 10_000).then(() => (released = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(released).toBe(false);
    Atomics.sub(waiters, 0, 1);
    await new Promise((r) => setTimeout(r, 20));
    expect(released).toBe(false);
    Atomics.sub(waiters, 0, 1);
    await waiting;
    expect(released).toBe(true);

    // A count that never falls (a stuck waiter) holds orders back at most maxMs.
    Atomics.store(waiters, 0, 1);
    const started = Date.now();
    await yieldTo(waiters, 30);
    expect(Date.now() - started).toBeGreaterThanOrEqual(29);
  });

  it('errors cross the thread as what the routes answer: a shared-state outage stays a 503', () => {
    const outage = errorFromWire(errorToWire(new StateUnavailableError('redis down')));
    expect(outage).toBeInstanceOf(StateUnavailableError);
    expect(outage.message).toBe('redis down');
    const other = errorFromWire(errorToWire(new TypeError('boom')));
    expect(other).not.toBeInstanceOf(StateUnavailableError);
    expect(other.message).toBe('order thread: boom');
    expect(errorToWire('plain')).toEqual({ name: 'Error', message: 'plain' });
  });
});
