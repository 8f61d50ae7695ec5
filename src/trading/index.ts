import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AuditLog } from '../audit/audit-log.js';
import type { Config, TradingConfig } from '../config/index.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { SharedState } from '../state/port.js';
import type { Store, StoreOptions } from '../store/db.js';
import { Assets } from './assets/index.js';
import { Faucet } from './faucet.js';
import { Ledger } from './ledger/index.js';
import { TradingLimits } from './limits.js';
import { MarketData } from './marketdata/index.js';
import { firstWindowMinute } from './orders/batch.js';
import { OrderQueries } from './orders/queries.js';
import { OrdersService } from './orders/service.js';
import { OrderThread } from './orders/thread.js';
import { Portfolios } from './portfolio/index.js';

export { clearHalt, haltKeys, haltStatus, setHalt } from './halt.js';

/** The trading core, one per server process. */
export interface Trading {
  assets: Assets;
  ledger: Ledger;
  orders: OrdersService;
  queries: OrderQueries;
  marketData: MarketData;
  portfolios: Portfolios;
  limits: TradingLimits;
  faucet: Faucet;
  close(): Promise<void>;
}

/** Builds the trading core and rebuilds every market's book from the store before it serves. */
export async function createTrading(deps: {
  store: Store;
  state: SharedState;
  clock: Clock;
  log: Logger;
  config: TradingConfig;
  metrics?: Registry;
  audit?: AuditLog;
  /**
   * Run order transactions on the order thread, which opens its own connection with these store
   * options (so not for an in-memory SQLite database) and audits its own commits.
   */
  thread?: { config: Config; store: StoreOptions; redis?: { url: string; prefix: string } | undefined; serverWriteWaiters?: SharedArrayBuffer | undefined } | undefined;
}): Promise<Trading> {
  const { store, state, clock, log, config } = deps;
  const assets = new Assets(store, clock, { makerFeeBps: config.makerFeeBps, takerFeeBps: config.takerFeeBps });
  const ledger = new Ledger(store, clock);
  const thread = deps.thread;
  const orders = new OrdersService({
    store,
    state,
    clock,
    log,
    assets,
    dailyLimitUsdc: config.dailyLimitUsdc,
    batchMax: config.batchMax,
    maxOpenOrders: config.maxOpenOrders,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(thread
      ? { executor: (hooks) => new OrderThread({ config: thread.config, store: thread.store, log, now: () => clock.now(), systemClock: clock === systemClock, audit: deps.audit, state, redis: thread.redis, serverWriteWaiters: thread.serverWriteWaiters }, hooks) }
      : {}),
  });
  try {
    await orders.start();
  } catch (err) {
    await orders.close().catch(() => {});
    throw err;
  }

  // Usage older than the limit window is never read again.
  const sweep = setInterval(() => {
    // One minute of slack: a batch that read its window a moment ago may still count that minute.
    const cutoff = firstWindowMinute(clock.now()) - 1;
    store.db.deleteFrom('trading_usage').where('minute', '<', cutoff).execute().catch((err) => log.warn({ err }, 'trading usage sweep failed'));
  }, 600_000);
  sweep.unref();

  return {
    assets,
    ledger,
    orders,
    queries: new OrderQueries(store),
    marketData: new MarketData({ store, clock, assets, orders }),
    portfolios: new Portfolios({ store, ledger, assets }),
    limits: new TradingLimits({ store, clock, orders, audit: deps.audit }),
    faucet: new Faucet({ ledger, assets, clock, enabled: config.faucet.enabled, maxPerCall: config.faucet.maxPerCall, maxPerDay: config.faucet.maxPerDay, audit: deps.audit }),
    async close() {
      clearInterval(sweep);
      await orders.close();
    },
  };
}
