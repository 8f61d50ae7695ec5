import { describe, expect, it } from 'vitest';
import { toApiError } from '../../http/problem.js';
import { StateUnavailableError } from '../../state/port.js';
import { markFailedAtCommit } from '../../store/db.js';
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

  it('a store outage in the thread stays a 503; a failure at COMMIT (outcome unknown) stays a 500', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    expect(toApiError(errorFromWire(errorToWire(refused))).apiError.code).toBe('service_unavailable');
    const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    expect(toApiError(errorFromWire(errorToWire(busy))).apiError.code).toBe('service_unavailable');
    const dropped = new Error('Connection terminated unexpectedly');
    expect(toApiError(errorFromWire(errorToWire(dropped))).apiError.code).toBe('service_unavailable');
    markFailedAtCommit(dropped);
    expect(toApiError(errorFromWire(errorToWire(dropped))).apiError.code).toBe('internal_error');
    // The thread dying with commands in flight: their outcome is unknown (documented 500).
    expect(toApiError(new Error('the order thread stopped before answering')).apiError.code).toBe('internal_error');
  });
});
