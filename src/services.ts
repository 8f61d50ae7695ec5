import type { FastifyRequest } from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import { Accounts } from './accounts/accounts.js';
import { ConfigError, type Config } from './config/index.js';
import { AuditLog } from './audit/audit-log.js';
import { assertKeyringOpensStore, assertNoSandboxTraces, assertPrivateDataDir, assertStoreEnvironment, makeDataDir, resolveKeyring } from './config/secrets.js';
import { systemClock, type Clock } from './lib/clock.js';
import { createLogger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import type { Keyring } from './security/crypto/keyring.js';
import { SecurityEvents } from './security/events/index.js';
import { AccessTokens } from './security/identity/access-tokens.js';
import { ensureKeysetFile, SigningKeys } from './security/identity/signing-keys.js';
import { SecuritySync } from './security/identity/security-sync.js';
import { Sessions } from './security/identity/sessions.js';
import { SignInNonces } from './security/identity/nonces.js';
import { SignIn } from './security/identity/sign-in.js';
import type { Principal } from './security/principal.js';
import { openStore, type StoreOptions, type Store } from './store/db.js';
import { migrateToLatest } from './store/migrate.js';
import { MemoryState } from './state/memory.js';
import type { SharedState } from './state/port.js';
import { RedisState } from './state/redis.js';
import { KeyAuthenticator } from './security/keys/authenticator.js';
import { ReplayGuard } from './security/replay/index.js';
import { ApiKeys } from './security/keys/service.js';
import { openCountryLookup, type CountryLookup } from './security/network/countries.js';
import { IpBlocks } from './security/ddos/blocks.js';
import { DdosGuard } from './security/ddos/guard.js';
import { DdosMetrics } from './security/ddos/metrics.js';
import { RateLimiter } from './security/ratelimit/limiter.js';
import { RateLimitMetrics } from './security/ratelimit/metrics.js';
import { PartnerLimits } from './security/ratelimit/partner-limits.js';
import { auditTrading } from './trading/audit.js';
import { createTrading, type Trading } from './trading/index.js';
import { Tokens } from './trading/tokens/index.js';
import { SandboxChainAdapter, UnconfiguredChainAdapter, Withdrawals } from './trading/withdrawals/index.js';

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
  /** Sign-in sessions and rotating refresh tokens; revocation (identity). */
  sessions: Sessions;
  /** Wallet sign-in (challenge, login) and refresh (identity). */
  signIn: SignIn;
  /** Loads recent revocations and role changes from the database into shared state (identity). */
  securitySync: SecuritySync;
  apiKeyAuthenticator?: ApiKeyAuthenticator;
  /** API keys: management and the request-path lookups (issue 4). */
  apiKeys: ApiKeys;
  /** The geo-lookup port: country of an address (bundled MMDB, opened once per process). */
  countries: CountryLookup;
  /** The audit log every feature writes through (recordIn / record / enqueue; see audit/audit-log.ts). */
  audit: AuditLog;
  /** Sliding-window limits with backoff and suspension (security/ratelimit). */
  rateLimiter: RateLimiter;
  /** Per-account partner limits, cached in every process. */
  partnerLimits: PartnerLimits;
  /** The IP block list every process enforces before any other work (security/ddos). */
  ipBlocks: IpBlocks;
  /** Automatic blocking of addresses that fail too much. */
  ddosGuard: DdosGuard;
  /** DDoS-guard counters (blocks, blocked requests, refused connections). */
  ddosMetrics: DdosMetrics;
  /** Assets and markets, ledger, order books, market data, portfolios (src/trading). */
  trading: Trading;
  /** Token launches and management (issue 7, src/trading/tokens). */
  tokens: Tokens;
  /** Withdrawals: tiers, address book, approvals, the chain adapter (issue 7, src/trading/withdrawals). */
  withdrawals: Withdrawals;
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
  const closers: (() => Promise<void> | void)[] = [];
  try {
    return await buildServices(config, overrides, closers);
  } catch (err) {
    // A start-up that fails half-way closes what it had opened (the database pool, the Redis
    // connection, timers): otherwise they keep the process alive and `serve` or a CLI command
    // hangs after printing its error instead of exiting 1.
    for (const fn of closers.reverse()) {
      try {
        await fn();
      } catch {
        // The start-up error is the one to report.
      }
    }
    throw err;
  }
}

/** How long processes remember that a signing key's rotation was recorded (they reload every 5 s). */
const SIGNING_ROTATION_MEMORY_MS = 7 * 86_400_000;

async function buildServices(config: Config, overrides: ServiceOverrides, closers: (() => Promise<void> | void)[]): Promise<Services> {
  const clock = overrides.clock ?? systemClock;
  const log = createLogger(config.logLevel, overrides.logDestination);

  makeDataDir(config);
  // The data dir holds the SQLite database and sandbox secrets: nobody else may write there.
  if (!config.databaseUrl || !config.masterKey || !config.jwtKeysFileSupplied) assertPrivateDataDir(config);
  const keyring = resolveKeyring(config);
  if (config.env === 'sandbox' && !config.jwtKeysFileSupplied) ensureKeysetFile(config.jwtKeysFile, clock.now());
  const maxTokenLifetimeMs = (config.jwt.accessTtlSec + config.jwt.clockToleranceSec) * 1000;
  // A keyset that cannot be used is a configuration error: one line naming the variable.
  const signingKeys = await SigningKeys.load(config.jwtKeysFile, maxTokenLifetimeMs).catch((err: Error) => {
    throw new ConfigError('MOONDRAFT_JWT_KEYS_FILE', err.message);
  });

  const storeOptions: StoreOptions = { databaseUrl: config.databaseUrl, pgSchema: config.pgSchema, dataDir: config.dataDir, ...(overrides.sqliteFile ? { sqliteFile: overrides.sqliteFile } : {}) };
  // The order thread opens its own connection: not possible to an in-memory SQLite database.
  const orderThread = config.trading.orderThread && storeOptions.sqliteFile !== ':memory:';
  // Beside the order thread on one SQLite file, this thread's statements wait for the write lock
  // without blocking it (and the order thread lets them in): see StoreOptions.sqliteWriteWaiters.
  const sqliteWriteWaiters = orderThread && !config.databaseUrl ? new SharedArrayBuffer(4) : undefined;
  const store = await openStore({ ...storeOptions, sqliteWriteWaiters });
  closers.push(() => store.close());
  await migrateToLatest(store);
  await assertKeyringOpensStore(store, keyring);
  // Before the environment is recorded: a live start refused here must not pin the store to live.
  if (config.env === 'live') await assertNoSandboxTraces(store);
  await assertStoreEnvironment(store, config.env, clock.now());

  const state = overrides.state ?? (config.redisUrl ? new RedisState({ url: config.redisUrl, prefix: config.statePrefix }) : new MemoryState(clock));
  closers.push(() => state.close());
  // Redis refuses commands until its connection is up (no offline queue): give it a moment at
  // start-up so the first requests (and the security sync below) do not fail for nothing.
  for (let i = 0; i < 40 && state.kind === 'redis' && !(await state.ping()); i++) await new Promise((r) => setTimeout(r, 50));

  const events = new SecurityEvents();
  const metrics = new Metrics({ processMetrics: overrides.processMetrics ?? true });
  events.subscribe((e) => metrics.securityEvents.inc({ type: e.type }));
  events.onSubscriberError = (err, event) => log.error({ err, eventType: event.type }, 'security event subscriber failed');
  // A rotation (`moondraft keys rotate-signing`) reaches every process by its keyset reload; the
  // first of them to see the new key records it (an audit event), the others find it taken. Shared
  // state away: recorded anyway, since a repeated record is better than a missing one.
  signingKeys.onActiveChanged((kid) => {
    const record = () => events.emit({ type: 'signing_keys.rotated', kid, at: clock.now() });
    state.firstSeen('signing-key-rotated', kid, SIGNING_ROTATION_MEMORY_MS).then(
      (first) => first && record(),
      (err: unknown) => {
        log.warn({ err, kid }, 'could not tell whether another process recorded this signing key rotation; recording it');
        record();
      },
    );
  });
  // Reloads start only now that the rotation listener is in place: a reload during the start-up
  // above (a long migration, Redis slow to answer) would take a rotation in without anyone seeing
  // it, and later reloads find the file unchanged. Registered after the state, so it stops first.
  const reloadKeys = setInterval(() => signingKeys.reload().catch((err) => log.error({ err }, 'signing keyset reload failed')), 5_000);
  reloadKeys.unref();
  closers.push(() => clearInterval(reloadKeys));

  const accessTokens = new AccessTokens(
    signingKeys,
    { issuer: config.jwt.issuer, audience: config.jwt.audience, ttlSec: config.jwt.accessTtlSec, clockToleranceSec: config.jwt.clockToleranceSec, cacheSize: config.tokenCacheSize },
    clock,
  );
  // Registered after the store and state, so it closes (flushing buffered events) before them.
  const audit = new AuditLog({ store, keyring, signingKeys, clock, log, registry: metrics.registry, options: config.audit });
  audit.subscribeTo(events);
  audit.start();
  closers.push(() => audit.close());
  const accounts = new Accounts({ store, state, clock, events, bootstrapAdmin: config.bootstrapAdmin, roleTtlMs: maxTokenLifetimeMs, audit });

  const sessions = new Sessions({
    store,
    state,
    clock,
    events,
    options: { refreshAbsoluteMs: config.jwt.refreshAbsoluteSec * 1000, refreshIdleMs: config.jwt.refreshIdleSec * 1000, accessTokenLifetimeMs: maxTokenLifetimeMs },
    onError: (err) => log.error({ err }, 'session activity write failed'),
  });
  closers.push(() => sessions.close());
  // In-process replay memory starts empty: a request the previous process accepted could be
  // accepted again after a restart. Redis keeps the memory across restarts of the servers, but not
  // across its own without persistence (or a failover, or a flush): the memories vouch only for
  // what was signed (or issued) since they began, found at start-up (no marker) or by the security
  // sync of a running process (see ReplayGuard).
  const memoryBegan = state.kind === 'memory' ? clock.now() : await ReplayGuard.heldSince(state, clock.now());
  const memoryHeld = state.kind === 'memory' ? undefined : memoryBegan;
  // Sign-in nonces are MACs under a key derived from the master key, so any process redeems what
  // another issued; only redeemed ones are remembered, and only since the memory began.
  const nonces = new SignInNonces(keyring, state, { since: memoryBegan, held: memoryHeld });
  const signIn = new SignIn({ config, clock, nonces, accounts, sessions, accessTokens, events });
  const securitySync = new SecuritySync({ store, state, clock, sessions, log, windowMs: maxTokenLifetimeMs, intervalMs: config.securitySyncMs });
  await securitySync.start(); // before the first request: in-process state starts empty
  closers.push(() => securitySync.stop());
  const countries = await openCountryLookup(config.keys.geoipFile).catch((err: Error) => {
    throw new ConfigError('MOONDRAFT_GEOIP_DB', `cannot open the country database: ${err.message}`);
  });
  const apiKeys = new ApiKeys({ store, state, clock, keyring, events, accounts, log, env: config.env, audit });
  await apiKeys.start();
  // Key versions ride the security sync like revocations and roles: see ApiKeys.republishChanged.
  securitySync.onPass(async (since) => void (await apiKeys.republishChanged(since)));
  closers.push(() => apiKeys.stop());
  // While the store holds usable keys, requests signed before the replay memory began are refused
  // (with none, no request signed before can exist).
  const replaySince = (await apiKeys.anyUnrevoked()) ? memoryBegan : undefined;
  const replay = new ReplayGuard(state, replaySince, memoryHeld);
  if (state.kind === 'redis') {
    securitySync.onStateLost(async (at, intactAt) => {
      log.warn('shared state lost its replay memory (restarted empty?): requests signed, and sign-in nonces issued, before it began again are refused');
      await replay.lostBefore(at, intactAt);
      await nonces.lostBefore(at, intactAt);
    });
  }
  const apiKeyAuthenticator = new KeyAuthenticator({ keys: apiKeys, countries, state, env: config.env, clock, events, replay });
  const sweepReminders = () => void apiKeys.sweepRotationReminders().catch((err) => log.error({ err }, 'API key rotation-reminder sweep failed'));
  const firstSweep = setTimeout(sweepReminders, Math.min(30_000, config.keys.rotationSweepMs));
  const sweeps = setInterval(sweepReminders, config.keys.rotationSweepMs);
  firstSweep.unref();
  sweeps.unref();
  closers.push(() => {
    clearTimeout(firstSweep);
    clearInterval(sweeps);
  });

  // Rate limits and DDoS guards. With a test clock, windows run on it instead of the state's clock.
  const timeSource = overrides.clock ? 'caller' : 'state';
  const localLimiter = new MemoryState(clock);
  closers.push(() => localLimiter.close());
  const rateLimiter = new RateLimiter({ state, fallback: localLimiter, clock, rules: config.rateLimit, events, metrics: new RateLimitMetrics(metrics.registry), log, timeSource });
  const partnerLimits = new PartnerLimits({ store, state, clock, log, audit });
  closers.push(() => partnerLimits.close());
  const ddosMetrics = new DdosMetrics(metrics.registry);
  const ipBlocks = new IpBlocks({ store, state, clock, events, log, metrics: ddosMetrics, audit });
  closers.push(() => ipBlocks.close());
  await ipBlocks.initialized;
  const ddosGuard = new DdosGuard({ state, fallback: localLimiter, blocks: ipBlocks, config: config.ddos, clock, log, timeSource });
  ddosGuard.watch(events);
  closers.push(() => ddosGuard.close());
  const trading = await createTrading({
    store,
    state,
    clock,
    log,
    config: config.trading,
    metrics: metrics.registry,
    audit,
    thread: orderThread
      ? { config, store: storeOptions, redis: !overrides.state && config.redisUrl ? { url: config.redisUrl, prefix: config.statePrefix } : undefined, serverWriteWaiters: sqliteWriteWaiters }
      : undefined,
  });
  closers.push(() => trading.close());
  // The order thread audits its own commits (into the same chain).
  if (!trading.orders.threaded) auditTrading(trading, audit);
  const tokens = new Tokens({ store, ledger: trading.ledger, assets: trading.assets, audit, config: config.tokens });
  // Only the sandbox adapter exists so far: live never invents a transaction hash (see chain-adapter.ts).
  const adapter = config.env === 'sandbox' ? new SandboxChainAdapter() : new UnconfiguredChainAdapter();
  const withdrawals = new Withdrawals({ store, clock, ledger: trading.ledger, assets: trading.assets, tokens, audit, adapter, config: config.withdrawals, log });

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
    sessions,
    signIn,
    securitySync,
    apiKeys,
    countries,
    apiKeyAuthenticator,
    audit,
    rateLimiter,
    partnerLimits,
    ipBlocks,
    ddosGuard,
    ddosMetrics,
    trading,
    tokens,
    withdrawals,
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
