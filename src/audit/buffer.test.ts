import { afterEach, describe, expect, it, vi } from 'vitest';
import { BatchBuffer } from './buffer.js';

function buffer(options: Partial<{ batchSize: number; capacity: number; flushIntervalMs: number; fail: () => boolean }> = {}) {
  const writes: { batch: number[]; dropped: number }[] = [];
  const errors: unknown[] = [];
  const b = new BatchBuffer<number>({
    batchSize: options.batchSize ?? 3,
    capacity: options.capacity ?? 10,
    flushIntervalMs: options.flushIntervalMs ?? 1000,
    async write(batch, dropped) {
      if (options.fail?.()) throw new Error('store down');
      writes.push({ batch, dropped });
    },
    onError: (err) => errors.push(err),
  });
  return { b, writes, errors };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('BatchBuffer', () => {
  it('writes a batch as soon as batchSize items wait, in order', async () => {
    const { b, writes } = buffer({ batchSize: 3 });
    b.push(1);
    b.push(2);
    expect(writes).toHaveLength(0);
    b.push(3);
    b.push(4);
    await b.flush();
    expect(writes.map((w) => w.batch)).toEqual([[1, 2, 3], [4]]);
  });

  it('writes on the interval timer', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { b, writes } = buffer({ batchSize: 100, flushIntervalMs: 500 });
    b.start();
    b.push(1);
    await vi.advanceTimersByTimeAsync(499);
    expect(writes).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(writes.map((w) => w.batch)).toEqual([[1]]);
    await b.close();
  });

  it('is bounded: drops beyond capacity and reports the count with the next write', async () => {
    const { b, writes } = buffer({ batchSize: 100, capacity: 2 });
    expect(b.push(1)).toBe(true);
    expect(b.push(2)).toBe(true);
    expect(b.push(3)).toBe(false);
    expect(b.push(4)).toBe(false);
    await b.flush();
    expect(writes).toEqual([{ batch: [1, 2], dropped: 2 }]);
  });

  it('keeps a batch whose write failed and writes it next time', async () => {
    let down = true;
    const { b, writes } = buffer({ batchSize: 100, fail: () => down });
    b.push(1);
    b.push(2);
    await expect(b.flush()).rejects.toThrow('store down');
    expect(b.size).toBe(2);
    down = false;
    b.push(3);
    await b.flush();
    expect(writes.map((w) => w.batch)).toEqual([[1, 2, 3]]);
  });

  it('writes everything left on close, and refuses new items after', async () => {
    const { b, writes } = buffer({ batchSize: 2, capacity: 10 });
    b.start();
    for (const i of [1, 2, 3, 4, 5]) b.push(i);
    const { unwritten } = await b.close();
    expect(unwritten).toBe(0);
    expect(writes.flatMap((w) => w.batch)).toEqual([1, 2, 3, 4, 5]);
    expect(b.push(6)).toBe(false);
  });

  it('reports what it could not write on close when the store is gone', async () => {
    const { b, errors } = buffer({ batchSize: 100, fail: () => true });
    b.push(1);
    const { unwritten } = await b.close();
    expect(unwritten).toBe(1);
    expect(errors).toHaveLength(1);
  });

  it('tells of every dropped item as it is dropped, also the part of a failed batch that no longer fits back', async () => {
    const dropped: number[] = [];
    let arriving: (() => void) | undefined;
    const b = new BatchBuffer<number>({
      batchSize: 100,
      capacity: 3,
      flushIntervalMs: 1000,
      async write() {
        // Items arrive while the store is failing: they take the room the batch had.
        arriving?.();
        throw new Error('store down');
      },
      onError: () => {},
      onDropped: (n) => dropped.push(n),
    });
    for (const i of [1, 2, 3]) b.push(i);
    expect(b.push(4)).toBe(false);
    expect(dropped).toEqual([1]);
    arriving = () => {
      b.push(5);
      b.push(6);
    };
    await expect(b.flush()).rejects.toThrow('store down');
    // 1 fits back in front of 5 and 6; 2 and 3 are lost, and said so now, not only in the next write.
    expect(b.size).toBe(3);
    expect(dropped).toEqual([1, 2]);
    expect(b.droppedSinceLastWrite).toBe(3);
  });
});
