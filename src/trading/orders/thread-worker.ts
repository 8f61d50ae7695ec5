/**
 * The order thread (started by ./thread.ts): an OrderSequencer with its own store connection, so
 * that the order transactions, their SQL and their commits run beside the thread that answers
 * HTTP instead of stopping it. It is to the server what a second server process is on a shared
 * PostgreSQL: it locks market rows and the audit chain head inside its transactions, and checks
 * each book against the market's seq, so writes from the server thread (the faucet, withdrawals,
 * token launches, listings) and from here never overwrite each other.
 *
 * Messages: see ThreadRequest and ThreadReply in ./thread.ts.
 */
import { Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditCategory } from '../../audit/events.js';
import { appendIn } from '../../audit/chain.js';
import { sealEvent } from '../../audit/seal.js';
import { resolveKeyring } from '../../config/secrets.js';
import type { Clock } from '../../lib/clock.js';
import { createLogger } from '../../observability/logger.js';
import { RedisState } from '../../state/redis.js';
import { openStore } from '../../store/db.js';
import { Assets } from '../assets/index.js';
import { auditOrderCommits } from '../audit.js';
import { haltsOf, type HaltStatus } from '../halt.js';
import { OrderSequencer, type CommittedReport } from './sequencer.js';
import { errorFromWire, errorToWire, yieldTo, type ThreadInit, type ThreadReply, type ThreadRequest, type WireOutcome } from './thread.js';

const port = parentPort!;
const init = workerData as ThreadInit;
const post = (m: ThreadReply) => port.postMessage(m);

// Log lines go to the server thread, which writes them where its own go.
const log = createLogger(
  init.logLevel,
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      post({ t: 'log', line: chunk.toString('utf8') });
      cb();
    },
  }),
);

// The server thread's clock: the system clock, or the time it sent with the latest command (a
// test's manual clock).
let sentNow = init.now;
const clock: Clock = init.systemClock ? { now: () => Date.now() } : { now: () => sentNow };

// Halts: see HaltSource. Asking goes to the server thread, which holds the shared state.
let haltCalls = 0;
const haltWaits = new Map<number, { resolve: (h: Map<string, HaltStatus>) => void; reject: (err: unknown) => void }>();
function askHalts(markets: string[]): Promise<Map<string, HaltStatus>> {
  const id = ++haltCalls;
  return new Promise((resolve, reject) => {
    haltWaits.set(id, { resolve, reject });
    post({ t: 'halts', id, markets });
  });
}
const redis = init.halts.kind === 'redis' ? new RedisState({ url: init.halts.url, prefix: init.halts.prefix }) : undefined;
const haltWrites = init.halts.kind === 'epoch' ? new Int32Array(init.halts.counter) : undefined;
/** The halt statuses last read, and the count of halt-key writes before that read. */
const known = new Map<string, HaltStatus>();
let knownAt = -1;
async function halts(markets: string[]): Promise<Map<string, HaltStatus>> {
  if (redis) return haltsOf(redis, markets);
  if (!haltWrites) return askHalts(markets);
  const writes = Atomics.load(haltWrites, 0);
  if (writes === knownAt) {
    const cached = markets.map((m) => known.get(m));
    if (cached.every((h) => h !== undefined && !h.halted)) return new Map(markets.map((m, i) => [m, cached[i]!]));
  }
  const read = await askHalts(markets);
  if (writes !== knownAt) {
    known.clear();
    knownAt = writes;
  }
  for (const [m, h] of read) known.set(m, h);
  return read;
}

// What finished since the last reply, sent together once the microtasks of a commit have run.
let reports: CommittedReport[] = [];
let outcomes: WireOutcome[] = [];
let rebuilt = 0;
let retried = 0;
let audited: Partial<Record<AuditCategory, number>> = {};
/** Audit records appended by the transaction under way: counted once it has committed. */
let appending: Partial<Record<AuditCategory, number>> = {};
let flushing = false;
function flushNow(): void {
  if (reports.length === 0 && outcomes.length === 0 && rebuilt === 0 && retried === 0) return;
  post({ t: 'done', reports, outcomes, rebuilt, retried, audited });
  reports = [];
  outcomes = [];
  rebuilt = 0;
  retried = 0;
  audited = {};
}
function flushSoon(): void {
  if (flushing) return;
  flushing = true;
  setImmediate(() => {
    flushing = false;
    flushNow();
  });
}

// SQLite: before each transaction, the server thread's waiting statements go first (see yieldTo).
const serverWaiters = init.serverWriteWaiters ? new Int32Array(init.serverWriteWaiters) : undefined;
const letServerIn = serverWaiters ? () => yieldTo(serverWaiters) : undefined;

async function main(): Promise<void> {
  // Redis refuses commands until connected (no offline queue): wait for it, as the server does.
  for (let i = 0; i < 40 && redis && !(await redis.ping()); i++) await new Promise((r) => setTimeout(r, 50));
  const store = await openStore(init.store);
  // Only servers run the order thread, after the migrations: bounded like the server's statements.
  store.limitQueries(init.config.dbQueryTimeoutMs);
  const keyring = resolveKeyring(init.config);
  const assets = new Assets(store, clock, { makerFeeBps: init.config.trading.makerFeeBps, takerFeeBps: init.config.trading.takerFeeBps });
  const sequencer = new OrderSequencer({
    store,
    clock,
    log,
    assets,
    roleLimits: init.roleLimits,
    maxOpenOrders: init.maxOpenOrders,
    batchMax: init.config.trading.batchMax,
    halts,
    ...(letServerIn ? { beforeTransaction: letServerIn } : {}),
    report: {
      committed: (r) => {
        reports.push(r);
        for (const [category, n] of Object.entries(appending)) audited[category as AuditCategory] = (audited[category as AuditCategory] ?? 0) + n;
        appending = {};
        flushSoon();
      },
      rebuilt: () => {
        rebuilt += 1;
        flushSoon();
      },
      retried: () => {
        retried += 1;
        flushSoon();
      },
    },
  });
  // Hooks run in order in every transaction: the first forgets what a failed one had appended.
  sequencer.onCommitting(async () => {
    appending = {};
  });
  auditOrderCommits(sequencer, assets, {
    async recordManyIn(trx, events) {
      const sealed = events.map((e) => sealEvent(e, keyring, clock.now()));
      const refs = await appendIn(trx, store.dialect, sealed, clock.now());
      for (const r of sealed) appending[r.category as AuditCategory] = (appending[r.category as AuditCategory] ?? 0) + 1;
      return refs;
    },
  });

  port.on('message', (m: ThreadRequest) => {
    switch (m.t) {
      case 'submit':
        sentNow = m.now;
        for (const { id, command } of m.items) {
          sequencer.submit(command).then(
            (result) => outcomes.push({ id, result }),
            (err: unknown) => outcomes.push({ id, error: errorToWire(err) }),
          ).finally(flushSoon);
        }
        return;
      case 'halts': {
        const wait = haltWaits.get(m.id);
        haltWaits.delete(m.id);
        if (!wait) return;
        if (m.error) wait.reject(errorFromWire(m.error));
        else wait.resolve(m.halts!);
        return;
      }
      case 'close':
        void sequencer
          .close()
          .then(() => store.close())
          .then(() => redis?.close())
          .catch((err: unknown) => log.error({ err }, 'order thread: closing failed'))
          .finally(() => {
            // Whatever finished during the close goes out before the thread says it is done.
            flushNow();
            post({ t: 'closed' });
            port.close();
          });
        return;
    }
  });
  // The first command rebuilds every book it needs (the server thread sends a refresh at start).
  log.info({ store: store.dialect }, 'order thread ready');
  post({ t: 'ready' });
}

main().catch((err: unknown) => {
  post({ t: 'failed', error: errorToWire(err) });
  port.close();
});
