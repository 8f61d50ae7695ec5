/**
 * A bounded buffer written in batches: `push` is synchronous and cheap (the request hot path);
 * a batch is written when `batchSize` items wait, when the interval timer fires, and on `close`.
 * One write runs at a time, in order. A failed write puts its batch back at the front, so nothing
 * is lost while the store is briefly away. When the buffer is full, new items are dropped and
 * counted (never unbounded memory); the owner records the count so the gap shows in the log.
 */
export interface BatchBufferOptions<T> {
  batchSize: number;
  capacity: number;
  flushIntervalMs: number;
  write(batch: T[], dropped: number): Promise<void>;
  onError(err: unknown): void;
  /**
   * Told of every item dropped, when it is dropped: one refused by a full buffer, and the part of a
   * failed batch that no longer fits back in front of the items that arrived during its write.
   */
  onDropped?(n: number): void;
}

export class BatchBuffer<T> {
  private items: T[] = [];
  private dropped = 0;
  private chain: Promise<void> = Promise.resolve();
  private pending = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: BatchBufferOptions<T>) {}

  get size(): number {
    return this.items.length;
  }

  get droppedSinceLastWrite(): number {
    return this.dropped;
  }

  /** Starts the interval flush (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => {
      if (this.items.length > 0 || this.dropped > 0) this.flush().catch(this.options.onError);
    }, this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** Adds an item; returns false when the buffer was full and the item was dropped. */
  push(item: T): boolean {
    if (this.closed || this.items.length >= this.options.capacity) {
      this.dropped += 1;
      this.options.onDropped?.(1);
      return false;
    }
    this.items.push(item);
    if (this.items.length >= this.options.batchSize && !this.pending) this.flush().catch(this.options.onError);
    return true;
  }

  /** Writes one batch (after any write in progress). */
  flush(): Promise<void> {
    this.pending = true;
    const run = this.chain.then(() => this.writeBatch());
    this.chain = run.then(
      () => {
        this.pending = false;
      },
      () => {
        this.pending = false;
      },
    );
    return run;
  }

  private async writeBatch(): Promise<void> {
    if (this.items.length === 0 && this.dropped === 0) return;
    const batch = this.items.splice(0, this.options.batchSize);
    const dropped = this.dropped;
    this.dropped = 0;
    try {
      await this.options.write(batch, dropped);
    } catch (err) {
      // Put the batch back in front of newer items, within capacity.
      const room = Math.max(0, this.options.capacity - this.items.length);
      this.items.unshift(...batch.slice(0, room));
      const lost = Math.max(0, batch.length - room);
      this.dropped += dropped + lost;
      if (lost > 0) this.options.onDropped?.(lost);
      throw err;
    }
  }

  /** Stops the timer and writes everything left; resolves with what could not be written. */
  async close(): Promise<{ unwritten: number }> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (;;) {
      if (this.items.length === 0 && this.dropped === 0) {
        await this.chain;
        if (this.items.length === 0 && this.dropped === 0) return { unwritten: 0 };
      }
      try {
        await this.flush();
      } catch (err) {
        this.options.onError(err);
        return { unwritten: this.items.length };
      }
    }
  }
}
