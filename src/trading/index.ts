import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AuditLog } from '../audit/audit-log.js';
import type { TradingConfig } from '../config/index.js';
import type { Clock } from '../lib/clock.js';
import type { SharedState } from '../state/port.js';
import type { Store } from '../store/db.js';
import { Assets } from './assets/index.js';
import { Faucet } from './faucet.js';
import { Ledger } from './ledger/index.js';
import { TradingLimits } from './limits.js';
import { MarketData } from './marketdata/index.js';
import { firstWindowMinute } from './orders/batch.js';
import { OrderQueries } from './orders/queries.js';
import { OrdersService } from './orders/service.js';
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
export async function createTrading(deps: { store: Store; state: SharedState; clock: Clock; log: Logger; config: TradingConfig; metrics?: Registry; audit?: AuditLog }): Promise<Trading> {
  const { store, state, clock, log, config } = deps;
  const assets = new Assets(store, clock, { makerFeeBps: config.makerFeeBps, takerFeeBps: config.takerFeeBps });
  const ledger = new Ledger(store, clock);
  const orders = new OrdersService({ store, state, clock, log, assets, dailyLimitUsdc: config.dailyLimitUsdc, batchMax: config.batchMax, ...(deps.metrics ? { metrics: deps.metrics } : {}) });
  await orders.start();

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
    faucet: new Faucet({ ledger, assets, clock, maxPerCall: config.faucet.maxPerCall, maxPerDay: config.faucet.maxPerDay, audit: deps.audit }),
    async close() {
      clearInterval(sweep);
      await orders.close();
    },
  };
}
