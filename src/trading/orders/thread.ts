import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import pino from 'pino';
import type { AuditLog } from '../../audit/audit-log.js';
import type { AuditCategory } from '../../audit/events.js';
import type { Config } from '../../config/index.js';
import { fail, type Result } from '../../errors/registry.js';
import { MemoryState } from '../../state/memory.js';
import { StateUnavailableError, type SharedState } from '../../state/port.js';
import { failedAtCommit, markFailedAtCommit, type StoreOptions } from '../../store/db.js';
import { HALT_KEY_PREFIX, type HaltStatus } from '../halt.js';
import type { CommittedReport, OrderExecutor, SequencerCommand, SequencerReporter } from './sequencer.js';

/** What the order thread is started with (worker data: structured-cloned). */
export interface ThreadInit {
  config: Config;
  store: StoreOptions;
  logLevel: string;
  roleLimits: Readonly<Record<string, bigint>>;
  /** Most orders one account may have resting in one market. */
  maxOpenOrders: number;
  /** True: the thread reads the system clock. False: it uses the time sent with each command. */
  systemClock: boolean;
  now: number;
  /** Where the thread reads halts: see HaltSource. */
  halts: HaltSource;
  /** SQLite: how many of the server thread's statements wait for the write lock (StoreOptions.sqliteWriteWaiters). */
  serverWriteWaiters?: SharedArrayBuffer | undefined;
}

/**
 * How the order thread reads the halt switch at the start of each batch:
 * - `redis`: from Redis itself, through a connection of its own;
 * - `epoch`: in-process state lives in the server thread, which counts every write to a halt key
 *   in this shared counter: the thread asks the server thread only when the count moved since its
 *   last read, or a market it batches was halted or unknown then (a halt can expire unseen; it
 *   can only begin with a write);
 * - `ask`: asks the server thread every batch (any other state, such as a test's).
 */
export type HaltSource = { kind: 'redis'; url: string; prefix: string } | { kind: 'epoch'; counter: SharedArrayBuffer } | { kind: 'ask' };

export interface WireError {
  name: string;
  message: string;
  /** The error's code (a store's: ECONNREFUSED, a SQLSTATE, SQLITE_BUSY), so the answer can tell an outage. */
  code?: string;
  /** It ended a transaction at its COMMIT: the outcome is unknown (failedAtCommit). */
  atCommit?: boolean;
}

export type WireOutcome = { id: number; result: Result<unknown> } | { id: number; error: WireError };

/** Server thread → order thread. */
export type ThreadRequest =
  | { t: 'submit'; now: number; items: { id: number; command: SequencerCommand }[] }
  | { t: 'halts'; id: number; halts?: Map<string, HaltStatus>; error?: WireError }
  | { t: 'close' };

/** Order thread → server thread. */
export type ThreadReply =
  | { t: 'ready' }
  | { t: 'failed'; error: WireError }
  | { t: 'done'; reports: CommittedReport[]; outcomes: WireOutcome[]; rebuilt: number; retried: number; audited: Partial<Record<AuditCategory, number>> }
  | { t: 'halts'; id: number; markets: string[] }
  | { t: 'log'; line: string }
  | { t: 'closed' };

/**
 * Resolves once no statement of the server thread waits for the SQLite write lock (`waiters`,
 * see StoreOptions.sqliteWriteWaiters), or after `maxMs`. The order thread calls it before each
 * transaction: the waiting statements try every few ms, and without this pause the next batch
 * would begin the moment the last one committed, so they could wait until they time out. Bounded,
 * so that orders never stop for it.
 */
export async function yieldTo(waiters: Int32Array, maxMs = 100): Promise<void> {
  if (Atomics.load(waiters, 0) === 0) return;
  const until = Date.now() + maxMs;
  while (Atomics.load(waiters, 0) > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
}

export function errorToWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const code = (err as { code?: unknown }).code;
  return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}), ...(failedAtCommit(err) ? { atCommit: true } : {}) };
}

/**
 * Rebuilds an error the routes know how to answer: a shared-state outage or the store's (503),
 * told from a failure at COMMIT (its outcome unknown: 500).
 */
export function errorFromWire(e: WireError): Error {
  if (e.name === 'StateUnavailableError') return new StateUnavailableError(e.message);
  const err = new Error(e.message.startsWith('order thread: ') ? e.message : `order thread: ${e.message}`) as Error & { code?: string };
  err.name = e.name;
  if (e.code !== undefined) err.code = e.code;
  if (e.atCommit) markFailedAtCommit(err);
  return err;
}

/**
 * How to start the worker: its compiled module under dist/, or, when this module runs from
 * TypeScript sources (tests, `tsx`), the .ts module through tsx's loader, registered inside the
 * worker (a worker does not inherit the loader of the thread that starts it).
 */
function workerScript(): { script: string | URL; eval: boolean } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return { script: pathToFileURL(path.join(path.dirname(here), 'thread-worker.js')), eval: false };
  const require = createRequire(import.meta.url);
  const pkgFile = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const api = pathToFileURL(path.join(path.dirname(pkgFile), pkg.exports['./esm/api']!.import.default)).href;
  const entry = pathToFileURL(path.join(path.dirname(here), 'thread-worker.ts')).href;
  return { script: `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`, eval: true };
}

export interface OrderThreadOptions {
  config: Config;
  store: StoreOptions;
  log: Logger;
  /** The server thread's clock: the order thread uses the time sent with each command unless `systemClock`. */
  now: () => number;
  systemClock: boolean;
  audit?: AuditLog | undefined;
  /** The server's shared state: the thread's halt reads follow from it (see HaltSource). */
  state: SharedState;
  /** Set when `state` is the Redis named in the configuration, which the thread may then open itself. */
  redis?: { url: string; prefix: string } | undefined;
  /** The server thread's SQLite write waiters (see ThreadInit). */
  serverWriteWaiters?: SharedArrayBuffer | undefined;
}

const RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 30_000;

/**
 * The order sequencer on a thread of its own: an OrderExecutor that forwards commands to it
 * (those that arrive in one turn of the event loop go in one message) and resolves each once the
 * thread reports its transaction committed, with the snapshots and metrics of that commit applied
 * first. The thread asks back for halts (shared state lives here) and sends its log lines here.
 *
 * If the thread dies, the commands it held are failed (their outcome is unknown: a retry with the
 * same clientOrderId returns the original if it committed) and a new thread is started, which
 * rebuilds the books from the store.
 */
export class OrderThread implements OrderExecutor {
  private worker!: Worker;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (r: Result<unknown>) => void; reject: (err: unknown) => void }>();
  private outbox: { id: number; command: SequencerCommand }[] = [];
  private flushing = false;
  private closing: Promise<void> | null = null;
  private readyWait!: Promise<void>;
  private readonly halts: HaltSource;
  /** True from a thread's 'ready' to its exit: commands are only sent to a thread that serves. */
  private alive = false;
  /** The wait before the next start: grows while threads fail to start. */
  private restartDelay = RESTART_DELAY_MS;
  /** Stops counting halt-key writes (in-process state). */
  private unwatch: (() => void) | undefined;
  /** Resolves when the current thread has exited (at once for one that already has). */
  private workerExited: Promise<void> = Promise.resolve();

  constructor(
    private readonly options: OrderThreadOptions,
    private readonly hooks: { report: SequencerReporter; halts: (markets: string[]) => Promise<Map<string, HaltStatus>>; roleLimits: Readonly<Record<string, bigint>>; maxOpenOrders: number },
  ) {
    if (options.state instanceof MemoryState) {
      const counter = new SharedArrayBuffer(4);
      const writes = new Int32Array(counter);
      this.unwatch = options.state.watchWrites(HALT_KEY_PREFIX, () => Atomics.add(writes, 0, 1));
      this.halts = { kind: 'epoch', counter };
    } else {
      this.halts = options.redis ? { kind: 'redis', ...options.redis } : { kind: 'ask' };
    }
    this.spawn(true);
  }

  /** Resolves once the thread has opened its store; rejects if it could not start. */
  started(): Promise<void> {
    return this.readyWait;
  }

  private spawn(initial: boolean): void {
    const { script, eval: isEval } = workerScript();
    const init: ThreadInit = {
      config: this.options.config,
      store: this.options.store,
      logLevel: this.options.log.level,
      roleLimits: this.hooks.roleLimits,
      maxOpenOrders: this.hooks.maxOpenOrders,
      systemClock: this.options.systemClock,
      now: this.options.now(),
      halts: this.halts,
      serverWriteWaiters: this.options.serverWriteWaiters,
    };
    // The thread gets none of this process's Node options (a loader registered here must not run
    // there), but for CPU profiling: `node --cpu-prof` then profiles the order thread too.
    const execArgv = process.execArgv.filter((a) => a.startsWith('--cpu-prof'));
    const worker = new Worker(script, { eval: isEval, workerData: init, execArgv });
    this.worker = worker;
    this.workerExited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    let ready = false;
    let settle: { resolve: () => void; reject: (err: unknown) => void };
    this.readyWait = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    this.readyWait.catch(() => {}); // observed by started(); a restart's failure is logged below
    worker.on('message', (m: ThreadReply) => {
      switch (m.t) {
        case 'ready':
          ready = true;
          // Commands are taken from now on: a thread that hangs while starting (its database
          // unreachable, say) leaves orders refused with 503, never waiting on it.
          this.alive = true;
          this.restartDelay = RESTART_DELAY_MS;
          settle.resolve();
          return;
        case 'failed':
          settle.reject(errorFromWire(m.error));
          // It will never serve, but what it opened before failing (its Redis connection) would
          // keep it alive: commands sent to it would wait forever and no new thread would start.
          void worker.terminate();
          return;
        case 'done':
          this.done(m);
          return;
        case 'halts':
          this.hooks.halts(m.markets).then(
            (halts) => worker.postMessage({ t: 'halts', id: m.id, halts } satisfies ThreadRequest),
            (err: unknown) => worker.postMessage({ t: 'halts', id: m.id, error: errorToWire(err) } satisfies ThreadRequest),
          );
          return;
        case 'log':
          writeLine(this.options.log, m.line);
          return;
        case 'closed':
          return;
      }
    });
    worker.on('error', (err) => this.options.log.error({ err }, 'order thread failed'));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.alive = false;
      // Commands still held have an unknown outcome: fail them (as a failed COMMIT does).
      const lost = [...this.pending.values()];
      this.pending.clear();
      this.outbox = []; // not sent yet, but failed with the rest: never to run on the next thread
      for (const p of lost) p.reject(new Error('the order thread stopped before answering'));
      if (this.closing) return;
      settle.reject(new Error(`the order thread exited (code ${code}) before it was ready`));
      // The first start's failure fails the server's start (started() rejects); later ones retry.
      if (!ready && initial) return;
      // A thread that keeps failing to start (the database gone, say) is retried less and less often.
      const delay = ready ? RESTART_DELAY_MS : Math.min(this.restartDelay * 2, MAX_RESTART_DELAY_MS);
      this.restartDelay = delay;
      this.options.log.error({ code, lost: lost.length, retryInMs: delay }, 'order thread exited; starting a new one');
      setTimeout(() => {
        if (!this.closing) this.spawn(false);
      }, delay).unref();
    });
  }

  submit(command: SequencerCommand): Promise<Result<unknown>> {
    if (this.closing) return Promise.reject(new Error('the order thread is closing'));
    if (!this.alive) return Promise.resolve(fail('service_unavailable', 'Order processing is restarting; retry in a moment', { retryAfter: 1 }));
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.outbox.push({ id, command });
      if (!this.flushing) {
        this.flushing = true;
        // Commands that arrive in this turn of the event loop go in one message.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushing = false;
    if (this.outbox.length === 0) return;
    const items = this.outbox;
    this.outbox = [];
    try {
      this.worker.postMessage({ t: 'submit', now: this.options.now(), items } satisfies ThreadRequest);
    } catch (err) {
      // Nothing was sent (a command that cannot be copied to the thread): fail them, here.
      for (const { id } of items) {
        this.pending.get(id)?.reject(err);
        this.pending.delete(id);
      }
    }
  }

  private done(m: Extract<ThreadReply, { t: 'done' }>): void {
    try {
      for (const r of m.reports) this.hooks.report.committed(r);
      for (let i = 0; i < m.rebuilt; i++) this.hooks.report.rebuilt();
      for (let i = 0; i < m.retried; i++) this.hooks.report.retried();
      for (const [category, n] of Object.entries(m.audited)) this.options.audit?.countWritten(category as AuditCategory, n);
    } catch (err) {
      // Bookkeeping only: the outcomes below are committed and must still be answered.
      this.options.log.error({ err }, 'order thread: applying a commit report failed');
    }
    for (const o of m.outcomes) {
      const p = this.pending.get(o.id);
      if (!p) continue;
      this.pending.delete(o.id);
      if ('error' in o) p.reject(errorFromWire(o.error));
      else p.resolve(o.result);
    }
  }

  /**
   * Stops the thread at once, as a crash would: the commands it held fail (their outcome is
   * unknown) and a new thread starts, rebuilding the books from the store. Resolves once it serves.
   */
  async restart(): Promise<void> {
    const old = this.worker;
    await old.terminate();
    while (this.worker === old && !this.closing) await new Promise((r) => setTimeout(r, 20));
    await this.readyWait;
  }

  /**
   * Lets the thread finish every command it was sent, then stops it. A thread that has not
   * finished within `graceMs` is stopped anyway (its commands fail).
   */
  close(graceMs = 30_000): Promise<void> {
    this.closing ??= (async () => {
      this.unwatch?.();
      this.flush();
      const worker = this.worker;
      // A thread that failed to start, or died, has exited already: nothing to wait for.
      const exited = this.workerExited;
      worker.postMessage({ t: 'close' } satisfies ThreadRequest);
      const timer = setTimeout(() => {
        this.options.log.error({ graceMs }, 'order thread did not finish in time; stopping it');
        void worker.terminate();
      }, graceMs);
      timer.unref();
      await exited;
      clearTimeout(timer);
    })();
    return this.closing;
  }
}

/** Writes a log line the order thread made into the server's own log stream. */
function writeLine(log: Logger, line: string): void {
  const stream = (log as unknown as Record<symbol, { write(s: string): void } | undefined>)[pino.symbols.streamSym];
  stream?.write(line);
}
