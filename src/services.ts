import { mkdirSync } from 'node:fs';
import type { FastifyRequest } from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import { Accounts } from './accounts/accounts.js';
import type { Config } from './config/index.js';
import { resolveKeyring } from './config/secrets.js';
import { systemClock, type Clock } from './lib/clock.js';
import { createLogger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import type { Keyring } from './security/crypto/keyring.js';
import { SecurityEvents } from './security/events/index.js';
import { AccessTokens } from './security/identity/access-tokens.js';
import { ensureKeysetFile, SigningKeys } from './security/identity/signing-keys.js';
import type { Principal } from './security/principal.js';
import { openStore, type Store } from './store/db.js';
import { migrateToLatest } from './store/migrate.js';
import { MemoryState } from './state/memory.js';
import type { SharedState } from './state/port.js';
import { RedisState } from './state/redis.js';
import { createTrading, type Trading } from './trading/index.js';

/** Verifies an `X-API-Key` request (issue: API keys) and returns its principal or throws ApiError. */
export interface ApiKeyAuthenticator {
  authenticate(request: FastifyRequest, apiKey: string): Promise<Principal>;
}

/**
 * Everything a request handler may reach, built once per server instance. Ports (store, shared
 * state, clock) are chosen here from the configuration; nothing below knows which one it got.
 */
export interface Services {
  config: Config;
  log: Logger;
  clock: Clock;
  store: Store;
  state: SharedState;
  keyring: Keyring;
  signingKeys: SigningKeys;
  accessTokens: AccessTokens;
  events: SecurityEvents;
  metrics: Metrics;
  accounts: Accounts;
  apiKeyAuthenticator?: ApiKeyAuthenticator;
  /** Assets and markets, ledger, order books, market data, portfolios (src/trading). */
  trading: Trading;
  /** Registers work for graceful shutdown (flush buffers, stop timers); run in reverse order. */
  onClose(fn: () => Promise<void> | void): void;
  close(): Promise<void>;
}

export interface ServiceOverrides {
  clock?: Clock;
  logDestination?: DestinationStream;
  state?: SharedState;
  /** SQLite file name inside the data dir (tests use ':memory:'). */
  sqliteFile?: string;
  processMetrics?: boolean;
}

export async function createServices(config: Config, overrides: ServiceOverrides = {}): Promise<Services> {
  const clock = overrides.clock ?? systemClock;
  const log = createLogger(config.logLevel, overrides.logDestination);
  const closers: (() => Promise<void> | void)[] = [];

  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const keyring = resolveKeyring(config);
  if (config.env === 'sandbox' && !config.jwtKeysFileSupplied) ensureKeysetFile(config.jwtKeysFile, clock.now());
  const maxTokenLifetimeMs = (config.jwt.accessTtlSec + config.jwt.clockToleranceSec) * 1000;
  const signingKeys = await SigningKeys.load(config.jwtKeysFile, maxTokenLifetimeMs);
  const reloadKeys = setInterval(() => signingKeys.reload().catch((err) => log.error({ err }, 'signing keyset reload failed')), 5_000);
  reloadKeys.unref();
  closers.push(() => clearInterval(reloadKeys));

  const store = await openStore({ databaseUrl: config.databaseUrl, pgSchema: config.pgSchema, dataDir: config.dataDir, ...(overrides.sqliteFile ? { sqliteFile: overrides.sqliteFile } : {}) });
  closers.push(() => store.close());
  await migrateToLatest(store);

  const state = overrides.state ?? (config.redisUrl ? new RedisState({ url: config.redisUrl, prefix: config.statePrefix }) : new MemoryState(clock));
  closers.push(() => state.close());

  const events = new SecurityEvents();
  const metrics = new Metrics({ processMetrics: overrides.processMetrics ?? true });
  events.subscribe((e) => metrics.securityEvents.inc({ type: e.type }));
  events.onSubscriberError = (err, event) => log.error({ err, eventType: event.type }, 'security event subscriber failed');

  const accessTokens = new AccessTokens(
    signingKeys,
    { issuer: config.jwt.issuer, audience: config.jwt.audience, ttlSec: config.jwt.accessTtlSec, clockToleranceSec: config.jwt.clockToleranceSec },
    clock,
  );
  const accounts = new Accounts({ store, state, clock, events, bootstrapAdmin: config.bootstrapAdmin, roleTtlMs: maxTokenLifetimeMs });
  const trading = await createTrading({ store, state, clock, log, config: config.trading, metrics: metrics.registry });
  closers.push(() => trading.close());

  let closed = false;
  return {
    config,
    log,
    clock,
    store,
    state,
    keyring,
    signingKeys,
    accessTokens,
    events,
    metrics,
    accounts,
    trading,
    onClose: (fn) => closers.push(fn),
    async close() {
      if (closed) return;
      closed = true;
      for (const fn of closers.reverse()) {
        try {
          await fn();
        } catch (err) {
          log.error({ err }, 'error during shutdown');
        }
      }
    },
  };
}
