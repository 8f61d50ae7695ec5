import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { isWalletAddress } from '../accounts/wallets.js';
import { privateFileProblem } from './private-file.js';

/**
 * One typed, validated configuration, read from environment variables and, when
 * MOONDRAFT_CONFIG names a JSON file, from that file (environment wins). A bad value throws a
 * ConfigError whose message is one line naming the variable; `moondraft serve` prints it and exits 1.
 */
export interface Config {
  env: 'sandbox' | 'live';
  host: string;
  port: number;
  /** Public origin clients use (`https://api.example.com`); sign-in messages are bound to its host. */
  publicUrl: string;
  /** `host[:port]` of publicUrl: the EIP-4361 domain. */
  domain: string;
  dataDir: string;
  databaseUrl: string | undefined;
  /** PostgreSQL schema to use (tests isolate themselves with their own). */
  pgSchema: string;
  redisUrl: string | undefined;
  /** Prefix of every shared-state key (tests isolate themselves with their own). */
  statePrefix: string;
  /** Raw MOONDRAFT_MASTER_KEY, if supplied (parsed by security/crypto/keyring). */
  masterKey: string | undefined;
  /** The signing keyset file; in sandbox defaults to `<dataDir>/jwt-signing-keys.json`. */
  jwtKeysFile: string;
  jwtKeysFileSupplied: boolean;
  jwt: {
    issuer: string;
    audience: string;
    accessTtlSec: number;
    clockToleranceSec: number;
    refreshAbsoluteSec: number;
    refreshIdleSec: number;
  };
  tls: { certFile: string; keyFile: string } | undefined;
  /** Optional plain-HTTP port that only redirects to HTTPS. */
  httpRedirectPort: number | undefined;
  /** Peers whose X-Forwarded-For is believed (addresses or CIDR ranges). */
  trustedProxies: string[];
  bootstrapAdmin: string | undefined;
  bodyLimit: number;
  /**
   * A server's PostgreSQL statements that have not answered within this (ms) fail (503), and their
   * connection is dropped: a database that stops answering does not hold requests (and the serial
   * order thread) for ever. Not applied to migrations or one-off CLI commands.
   */
  dbQueryTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Serve /metrics on this separate port instead of the API port (in live, the only way to serve them). */
  metricsPort: number | undefined;
  /** The address the metrics port listens on (HOST unless MOONDRAFT_METRICS_HOST says otherwise). */
  metricsHost: string;
  timeouts: { requestMs: number; headersMs: number; keepAliveMs: number; connectionMs: number };
  /** Wallet sign-in (identity): the chain ids sign-in messages must name. */
  signIn: {
    /** EIP-155 chain id of EIP-4361 messages (MOONDRAFT_SIWE_CHAIN_ID, default 1). */
    ethereumChainId: number;
    /** Solana cluster named by Sign-In-With-Solana messages (MOONDRAFT_SIWS_CHAIN_ID, default mainnet). */
    solanaChainId: 'mainnet' | 'devnet' | 'testnet' | 'localnet';
  };
  /** Verified access tokens kept in memory (by token hash, until exp); 0 disables the cache. */
  tokenCacheSize: number;
  /** How often each process loads recent revocations and role changes from the database. */
  securitySyncMs: number;
  /** API keys: the country database (MMDB; default the bundled one) and the rotation-reminder sweep. */
  keys: { geoipFile: string | undefined; rotationSweepMs: number };
  /** The audit log (src/audit): retention, signed-checkpoint cadence, access-event batching. */
  audit: { retentionDays: number; checkpointIntervalSec: number; flushIntervalMs: number; batchSize: number; bufferCapacity: number };
  /** Rate-limit backoff, suspension and unauthenticated per-IP ceilings (issue: rate limits). */
  rateLimit: RateLimitConfig;
  /** Automatic IP blocking (issue: DDoS guards). */
  ddos: DdosConfig;
  trading: TradingConfig;
  /** Token launches and withdrawals (issue 7). */
  tokens: TokensConfig;
  withdrawals: WithdrawalsConfig;
}

export interface RateLimitConfig {
  /** Cool-down after the second strike; each further strike doubles it. */
  penaltyBaseMs: number;
  penaltyMaxMs: number;
  /** Refusals closer together than this count as one strike (requests already in flight). */
  penaltyGraceMs: number;
  /** Strikes and refusals are counted over this period. */
  strikeWindowMs: number;
  suspendAfterStrikes: number;
  /** Refusals within the strike window reaching this many times the limit also suspend. */
  abuseFactor: number;
  suspensionMs: number;
  /** Per client address, per second: sign-in routes (/api/v1/auth/*) and other unauthenticated requests. */
  signinPerIp: number;
  publicPerIp: number;
}

export interface DdosConfig {
  /** Failed authentications from one address within authFailureWindowMs that trigger a block. */
  authFailures: number;
  authFailureWindowMs: number;
  /** Unauthenticated 4xx responses per second from one address that trigger a block. */
  clientErrorsPerSec: number;
  blockMs: number;
  /** Open connections one address (IPv6: one /64) may hold to one server process; more are refused at once. */
  connectionsPerIp: number;
  /**
   * Addresses and ranges never blocked automatically and not held to the unauthenticated
   * per-address ceilings (health checkers, office, proxies). Default: loopback, because a local
   * reverse proxy not declared in MOONDRAFT_TRUSTED_PROXIES makes every client appear as
   * 127.0.0.1, and blocking it would block everyone. Trusted proxies are always exempt.
   */
  exempt: string[];
}

/** Trading defaults. Amounts are decimal strings (USDC for limits, whole asset units for the faucet). */
export interface TradingConfig {
  /** Fees of newly listed markets, in basis points. */
  makerFeeBps: number;
  takerFeeBps: number;
  /** Rolling-24 h traded notional per role, in USDC; admins override per account. */
  dailyLimitUsdc: { trader: string; admin: string };
  /** The sandbox faucet: on in sandbox only; bounds per account and asset, in whole units of the asset. */
  faucet: { enabled: boolean; maxPerCall: string; maxPerDay: string };
  /** Most order commands committed in one transaction (group commit). */
  batchMax: number;
  /** Most orders one account may have resting in one market's book. */
  maxOpenOrders: number;
  /**
   * Order transactions run on a thread of their own (trading/orders/thread.ts), so that the server
   * thread answers requests while they commit. Off: they run in the server thread.
   */
  orderThread: boolean;
}

export interface TokensConfig {
  /** Tokens one account may launch per rolling 24 h. */
  dailyCreations: number;
}

export interface WithdrawalsConfig {
  /** Rolling-24 h withdrawal limit per verification tier 0, 1, 2, in USDC (decimal strings). */
  tierLimitsUsdc: [string, string, string];
  /** Withdrawals worth at most this (USDC) are approved automatically; larger ones wait for an admin. */
  autoApproveUsdc: string;
  /** How long a new address-book entry (or switching the address book off) waits before it applies. */
  addressHoldMs: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Source = Record<string, string | undefined>;

/**
 * The audit trail's retention promise, two years, in days: the longest two calendar years (one
 * holding a 29 February) last 731 days, so 730 would purge a record up to a day before it is two
 * years old.
 */
export const AUDIT_TWO_YEARS_DAYS = 731;

/** Variables whose values are secrets: their values never appear in a ConfigError. */
const SECRET_VARIABLES = new Set(['MOONDRAFT_MASTER_KEY', 'DATABASE_URL', 'REDIS_URL']);

class Reader {
  /** Every name asked for: a config file's other names are typos (see loadConfig). */
  readonly asked = new Set<string>();

  constructor(private readonly source: Source) {}

  raw(name: string): string | undefined {
    this.asked.add(name);
    const v = this.source[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  private shown(name: string, value: string): string {
    return SECRET_VARIABLES.has(name) ? '(value hidden)' : JSON.stringify(value);
  }

  str(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (!/^(0|[1-9][0-9]*)$/.test(v) || Number(v) < min || Number(v) > max) {
      throw new ConfigError(name, `must be a whole number from ${min} to ${max} (got ${this.shown(name, v)})`);
    }
    return Number(v);
  }

  optionalInt(name: string, min: number, max: number): number | undefined {
    return this.raw(name) === undefined ? undefined : this.int(name, 0, min, max);
  }

  oneOf<T extends string>(name: string, values: readonly T[], fallback: T): T {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (!(values as readonly string[]).includes(v)) {
      throw new ConfigError(name, `must be one of ${values.join(', ')} (got ${this.shown(name, v)})`);
    }
    return v as T;
  }

  url(name: string, protocols: string[]): string | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(v);
    } catch {
      // A value with an @ may hold credentials (user:password@host): not repeated in the error.
      throw new ConfigError(name, `must be a URL (got ${v.includes('@') ? '(value hidden: it may hold credentials)' : this.shown(name, v)})`);
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new ConfigError(name, `must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
    }
    return v;
  }

  list(name: string): string[] {
    const v = this.raw(name);
    if (v === undefined) return [];
    const items = v.split(',').map((s) => s.trim());
    // An empty item is a value lost (a typo, an unset shell variable), not a shorter list.
    if (items.includes('')) throw new ConfigError(name, 'is a comma-separated list with an empty item');
    return items;
  }
}

function readConfigFile(file: string): Source {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('MOONDRAFT_CONFIG', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // Never the parser's message: it can quote the text around the error, and the file may hold
    // MOONDRAFT_MASTER_KEY or DATABASE_URL. Only where it is.
    const at = /at position (\d+)/.exec((err as Error).message);
    const where = at ? ` (line ${text.slice(0, Number(at[1])).split('\n').length})` : '';
    throw new ConfigError('MOONDRAFT_CONFIG', `${file} is not valid JSON${where}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('MOONDRAFT_CONFIG', `${file} must hold a JSON object of VARIABLE: value`);
  }
  const out: Source = {};
  for (const [k, v] of Object.entries(parsed)) {
    // Not null ("null"), true ("true"), objects or arrays: what the environment could not say either.
    if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(k, `in ${file} must be a string or number`);
    // JSON.parse has already rounded an integer past 2^53 (100000000000000001 reads as …000): the
    // value written is lost, so it must be written as a string.
    if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) {
      throw new ConfigError(k, `in ${file} is a number too large for JSON to hold exactly; write it as a string`);
    }
    out[k] = String(v);
  }
  // A file that holds the master key is held to the rule for key files.
  if (out.MOONDRAFT_MASTER_KEY !== undefined) {
    const open = privateFileProblem(file);
    if (open) throw new ConfigError('MOONDRAFT_CONFIG', `${open} (it holds MOONDRAFT_MASTER_KEY)`);
  }
  return out;
}

function isAddressOrCidr(entry: string): boolean {
  const [addr, bits, ...rest] = entry.split('/');
  if (rest.length > 0 || addr === undefined) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (bits === undefined) return true;
  return /^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/** The eight 16-bit groups of a valid IPv6 address (a dotted IPv4 tail becomes two groups). */
function ipv6Groups(address: string): number[] {
  let text = address.split('%')[0]!;
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (tail) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const fill = rest === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(fill).fill('0'), ...right].map((g) => parseInt(g, 16));
}

/** The shortest prefixes a trusted proxy range may have: wider ones take in much of the Internet. */
const PROXY_MIN_PREFIX = { v4: 8, v6: 8 };

/**
 * Whether a (valid) trusted-proxy entry covers so much of the address space that arbitrary clients
 * would be believed: wider than /8, or an IPv6 range holding every
 * IPv4-mapped address (`::ffff:0:0/96`), which the proxy check applies to IPv4 clients too.
 */
function tooWideForProxies(entry: string): boolean {
  const [addr, bits] = entry.split('/') as [string, string | undefined];
  if (bits === undefined) return false;
  const prefix = Number(bits);
  if (isIP(addr) === 4) return prefix < PROXY_MIN_PREFIX.v4;
  const groups = ipv6Groups(addr);
  const mapped = [0, 0, 0, 0, 0, 0xffff, 0, 0];
  const mappedRange = groups.slice(0, 6).every((g, i) => g === mapped[i]);
  if (mappedRange && prefix >= 96) return prefix - 96 < PROXY_MIN_PREFIX.v4;
  // Does the range hold all of ::ffff:0:0/96? Compare the first `prefix` bits with it.
  let holdsMapped = true;
  for (let bit = 0; bit < Math.min(prefix, 96) && holdsMapped; bit++) {
    const mask = 0x8000 >> bit % 16;
    holdsMapped = (groups[Math.floor(bit / 16)]! & mask) === (mapped[Math.floor(bit / 16)]! & mask);
  }
  return holdsMapped || prefix < PROXY_MIN_PREFIX.v6;
}

function existingFile(variable: string, file: string): string {
  const resolved = path.resolve(file);
  if (!existsSync(resolved)) throw new ConfigError(variable, `no such file: ${resolved}`);
  if (!statSync(resolved).isFile()) throw new ConfigError(variable, `not a file: ${resolved}`);
  return resolved;
}

/** A non-negative decimal amount with at most `decimals` places and at most 18 whole digits. */
function decimal(r: Reader, name: string, fallback: string, decimals: number): string {
  const v = r.raw(name) ?? fallback;
  const pattern = decimals > 0 ? new RegExp(`^(0|[1-9][0-9]{0,17})(\\.[0-9]{1,${decimals}})?$`) : /^(0|[1-9][0-9]{0,17})$/;
  if (!pattern.test(v)) throw new ConfigError(name, `must be a decimal amount with at most ${decimals} decimal places (got ${JSON.stringify(v)})`);
  return v;
}

export function loadConfig(environment: Source = process.env): Config {
  const fileName = environment.MOONDRAFT_CONFIG?.trim();
  // The environment wins where it says something: a variable set to nothing (docker-compose's
  // `${VAR}` when VAR is unset) is unset, as everywhere else here, and leaves the file's value.
  // Otherwise `MOONDRAFT_ENV=` beside a file saying live would start a sandbox.
  const said = Object.fromEntries(Object.entries(environment).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const fromFile = fileName ? readConfigFile(fileName) : {};
  const source: Source = fileName ? { ...fromFile, ...said } : environment;
  const r = new Reader(source);

  const env = r.oneOf('MOONDRAFT_ENV', ['sandbox', 'live'] as const, 'sandbox');
  const host = r.str('HOST', '127.0.0.1');
  if (host !== 'localhost' && isIP(host) === 0) throw new ConfigError('HOST', `must be an IP address or localhost (got ${JSON.stringify(host)})`);
  const port = r.int('PORT', 8080, 0, 65535);
  const dataDir = path.resolve(r.str('MOONDRAFT_DATA_DIR', './data'));

  const certFile = r.raw('MOONDRAFT_TLS_CERT');
  const keyFile = r.raw('MOONDRAFT_TLS_KEY');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(certFile ? 'MOONDRAFT_TLS_KEY' : 'MOONDRAFT_TLS_CERT', 'TLS needs both MOONDRAFT_TLS_CERT and MOONDRAFT_TLS_KEY');
  }
  // Checked here, so that a path that leads nowhere stops start-up naming its variable (and never
  // passes live's TLS requirement).
  const tls = certFile && keyFile ? { certFile: existingFile('MOONDRAFT_TLS_CERT', certFile), keyFile: existingFile('MOONDRAFT_TLS_KEY', keyFile) } : undefined;

  // Listening on every address (IPv4's 0.0.0.0, or IPv6's :: which takes IPv4 too) names the
  // loopback address clients on this machine use, never the wildcard itself.
  const defaultOrigin = `${tls ? 'https' : 'http'}://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host}:${port}`;
  // An origin, spelt one way (URL's own: lowercase scheme and host, no default port): sign-in
  // messages carry it as their URI and the redirect port sends clients to it. Credentials would be
  // shown to every client; a path, query or fragment would be dropped from the domain but kept in
  // the URI and the tokens' issuer.
  const publicParsed = new URL(r.url('MOONDRAFT_PUBLIC_URL', ['http:', 'https:']) ?? defaultOrigin);
  if (publicParsed.username || publicParsed.password || publicParsed.pathname !== '/' || publicParsed.search || publicParsed.hash) {
    throw new ConfigError('MOONDRAFT_PUBLIC_URL', 'must be an origin (scheme://host[:port]) without credentials, path, query or fragment');
  }
  const publicUrl = publicParsed.origin;
  const domain = publicParsed.host;

  const trustedProxies = r.list('MOONDRAFT_TRUSTED_PROXIES');
  for (const p of trustedProxies) {
    if (!isAddressOrCidr(p)) throw new ConfigError('MOONDRAFT_TRUSTED_PROXIES', `${JSON.stringify(p)} is not an IP address or CIDR range`);
    if (tooWideForProxies(p)) {
      throw new ConfigError(
        'MOONDRAFT_TRUSTED_PROXIES',
        `${JSON.stringify(p)} is too wide: any client in it could set its own X-Forwarded-For; list the proxies' addresses or ranges (/8 at the widest)`,
      );
    }
  }

  const pgSchema = r.str('MOONDRAFT_PG_SCHEMA', 'public');
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(pgSchema)) throw new ConfigError('MOONDRAFT_PG_SCHEMA', 'must be a lowercase SQL identifier');

  const jwtKeysFileRaw = r.raw('MOONDRAFT_JWT_KEYS_FILE');
  const bootstrapAdmin = r.raw('MOONDRAFT_BOOTSTRAP_ADMIN');
  // The same rule as sign-in's: a mistyped EIP-55 checksum, or base58 of another length than 32
  // bytes, names no wallet anyone holds, and the admin meant would silently never be one.
  if (bootstrapAdmin !== undefined && !isWalletAddress(bootstrapAdmin)) {
    throw new ConfigError('MOONDRAFT_BOOTSTRAP_ADMIN', 'must be an Ethereum (0x…, with a valid EIP-55 checksum when mixed-case) or Solana (base58 of 32 bytes) wallet address');
  }

  const rateLimit: RateLimitConfig = {
    penaltyBaseMs: r.int('MOONDRAFT_RL_PENALTY_BASE_MS', 1000, 1, 600_000),
    penaltyMaxMs: r.int('MOONDRAFT_RL_PENALTY_MAX_MS', 60_000, 1, 3_600_000),
    penaltyGraceMs: r.int('MOONDRAFT_RL_PENALTY_GRACE_MS', 250, 0, 10_000),
    strikeWindowMs: r.int('MOONDRAFT_RL_STRIKE_WINDOW_SEC', 60, 1, 86_400) * 1000,
    suspendAfterStrikes: r.int('MOONDRAFT_RL_SUSPEND_AFTER_STRIKES', 10, 2, 10_000),
    abuseFactor: r.int('MOONDRAFT_RL_ABUSE_FACTOR', 10, 2, 10_000),
    suspensionMs: r.int('MOONDRAFT_RL_SUSPENSION_SEC', 300, 1, 86_400) * 1000,
    signinPerIp: r.int('MOONDRAFT_RL_SIGNIN_PER_IP', 10, 1, 100_000),
    publicPerIp: r.int('MOONDRAFT_RL_PUBLIC_PER_IP', 50, 1, 100_000),
  };
  if (rateLimit.penaltyMaxMs < rateLimit.penaltyBaseMs) {
    throw new ConfigError('MOONDRAFT_RL_PENALTY_MAX_MS', 'must not be below MOONDRAFT_RL_PENALTY_BASE_MS');
  }
  const exemptRaw = r.raw('MOONDRAFT_DDOS_EXEMPT');
  const ddosExempt = exemptRaw === undefined ? ['127.0.0.0/8', '::1'] : exemptRaw === 'none' ? [] : r.list('MOONDRAFT_DDOS_EXEMPT');
  for (const p of ddosExempt) {
    if (!isAddressOrCidr(p)) throw new ConfigError('MOONDRAFT_DDOS_EXEMPT', `${JSON.stringify(p)} is not an IP address or CIDR range (or "none")`);
    // Exempting much of the Internet (0.0.0.0/0, ::/0) would turn automatic blocking and the
    // unauthenticated per-address ceilings off for every client: the same bound as for proxies.
    if (tooWideForProxies(p)) throw new ConfigError('MOONDRAFT_DDOS_EXEMPT', `${JSON.stringify(p)} is too wide: every client in it would escape blocking and the per-address limits (/8 at the widest)`);
  }
  const ddos: DdosConfig = {
    authFailures: r.int('MOONDRAFT_DDOS_AUTH_FAILURES', 20, 1, 100_000),
    authFailureWindowMs: r.int('MOONDRAFT_DDOS_AUTH_FAILURE_WINDOW_SEC', 60, 1, 86_400) * 1000,
    clientErrorsPerSec: r.int('MOONDRAFT_DDOS_CLIENT_ERRORS_PER_SEC', 30, 1, 100_000),
    blockMs: r.int('MOONDRAFT_DDOS_BLOCK_SEC', 900, 1, 30 * 86_400) * 1000,
    connectionsPerIp: r.int('MOONDRAFT_DDOS_CONNECTIONS_PER_IP', 256, 1, 1_000_000),
    exempt: [...ddosExempt, ...trustedProxies],
  };
  const requestMs = r.int('MOONDRAFT_REQUEST_TIMEOUT_MS', 30_000, 1000, 600_000);
  // The headers are part of the request: a headers deadline past the whole-request one never
  // fires first, and node:http refuses to build a server given such a pair (the side ports). One
  // set so is refused; the default follows a shorter request timeout.
  const headersMs = r.optionalInt('MOONDRAFT_HEADERS_TIMEOUT_MS', 1000, 120_000);
  if (headersMs !== undefined && headersMs > requestMs) throw new ConfigError('MOONDRAFT_HEADERS_TIMEOUT_MS', 'must not exceed MOONDRAFT_REQUEST_TIMEOUT_MS');
  const config: Config = {
    env,
    host,
    port,
    publicUrl,
    domain,
    dataDir,
    databaseUrl: r.url('DATABASE_URL', ['postgres:', 'postgresql:']),
    pgSchema,
    redisUrl: r.url('REDIS_URL', ['redis:', 'rediss:']),
    statePrefix: r.str('MOONDRAFT_STATE_PREFIX', 'md:'),
    masterKey: r.raw('MOONDRAFT_MASTER_KEY'),
    jwtKeysFile: jwtKeysFileRaw ? path.resolve(jwtKeysFileRaw) : path.join(dataDir, 'jwt-signing-keys.json'),
    jwtKeysFileSupplied: jwtKeysFileRaw !== undefined,
    jwt: {
      issuer: r.str('MOONDRAFT_JWT_ISSUER', publicUrl),
      audience: r.str('MOONDRAFT_JWT_AUDIENCE', 'moondraft-api'),
      accessTtlSec: 3600,
      clockToleranceSec: r.int('MOONDRAFT_JWT_CLOCK_TOLERANCE_SEC', 30, 0, 30),
      refreshAbsoluteSec: r.int('MOONDRAFT_REFRESH_ABSOLUTE_DAYS', 30, 1, 365) * 86400,
      refreshIdleSec: r.int('MOONDRAFT_REFRESH_IDLE_DAYS', 7, 1, 365) * 86400,
    },
    tls,
    httpRedirectPort: r.optionalInt('MOONDRAFT_HTTP_REDIRECT_PORT', 1, 65535),
    trustedProxies,
    bootstrapAdmin,
    bodyLimit: r.int('MOONDRAFT_BODY_LIMIT', 64 * 1024, 1024, 10 * 1024 * 1024),
    dbQueryTimeoutMs: r.int('MOONDRAFT_DB_QUERY_TIMEOUT_MS', 30_000, 1_000, 3_600_000),
    logLevel: r.oneOf('MOONDRAFT_LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
    metricsPort: r.optionalInt('MOONDRAFT_METRICS_PORT', 1, 65535),
    metricsHost: r.str('MOONDRAFT_METRICS_HOST', host),
    timeouts: {
      requestMs,
      headersMs: headersMs ?? Math.min(10_000, requestMs),
      keepAliveMs: r.int('MOONDRAFT_KEEPALIVE_TIMEOUT_MS', 5_000, 1000, 120_000),
      connectionMs: r.int('MOONDRAFT_CONNECTION_TIMEOUT_MS', 60_000, 1000, 600_000),
    },
    signIn: {
      ethereumChainId: r.int('MOONDRAFT_SIWE_CHAIN_ID', 1, 1, Number.MAX_SAFE_INTEGER),
      solanaChainId: r.oneOf('MOONDRAFT_SIWS_CHAIN_ID', ['mainnet', 'devnet', 'testnet', 'localnet'] as const, 'mainnet'),
    },
    tokenCacheSize: r.int('MOONDRAFT_TOKEN_CACHE_SIZE', 10_000, 0, 1_000_000),
    securitySyncMs: r.int('MOONDRAFT_SECURITY_SYNC_MS', 5_000, 500, 60_000),
    keys: {
      geoipFile: r.raw('MOONDRAFT_GEOIP_DB') === undefined ? undefined : existingFile('MOONDRAFT_GEOIP_DB', r.raw('MOONDRAFT_GEOIP_DB')!),
      rotationSweepMs: r.int('MOONDRAFT_KEY_SWEEP_INTERVAL_MS', 3_600_000, 1000, 86_400_000),
    },
    audit: {
      // Two years, whichever two: 730 days falls a day short of them when they hold a 29 February.
      retentionDays: r.int('MOONDRAFT_AUDIT_RETENTION_DAYS', AUDIT_TWO_YEARS_DAYS, 1, 36_500),
      checkpointIntervalSec: r.int('MOONDRAFT_AUDIT_CHECKPOINT_SECONDS', 300, 1, 86_400),
      flushIntervalMs: r.int('MOONDRAFT_AUDIT_FLUSH_MS', 1000, 10, 600_000),
      batchSize: r.int('MOONDRAFT_AUDIT_BATCH_SIZE', 500, 1, 10_000),
      bufferCapacity: r.int('MOONDRAFT_AUDIT_BUFFER_CAPACITY', 20_000, 1, 1_000_000),
    },
    rateLimit,
    ddos,
    trading: {
      makerFeeBps: r.int('MOONDRAFT_MAKER_FEE_BPS', 10, 0, 1000),
      takerFeeBps: r.int('MOONDRAFT_TAKER_FEE_BPS', 20, 0, 1000),
      dailyLimitUsdc: {
        trader: decimal(r, 'MOONDRAFT_DAILY_LIMIT_TRADER', '1000000', 6),
        admin: decimal(r, 'MOONDRAFT_DAILY_LIMIT_ADMIN', '10000000', 6),
      },
      faucet: {
        // Sandbox only: live has no faucet route, and the faucet itself refuses there too.
        enabled: env === 'sandbox',
        maxPerCall: decimal(r, 'MOONDRAFT_FAUCET_MAX_PER_CALL', '10000', 0),
        maxPerDay: decimal(r, 'MOONDRAFT_FAUCET_MAX_PER_DAY', '100000', 0),
      },
      batchMax: r.int('MOONDRAFT_ORDER_BATCH_MAX', 512, 1, 4096),
      maxOpenOrders: r.int('MOONDRAFT_MAX_OPEN_ORDERS', 200, 1, 100_000),
      orderThread: r.oneOf('MOONDRAFT_ORDER_THREAD', ['on', 'off'] as const, 'on') === 'on',
    },
    tokens: {
      dailyCreations: r.int('MOONDRAFT_TOKEN_DAILY_CREATIONS', 5, 0, 10_000),
    },
    withdrawals: {
      tierLimitsUsdc: [
        decimal(r, 'MOONDRAFT_WITHDRAWAL_LIMIT_TIER0', '1000', 6),
        decimal(r, 'MOONDRAFT_WITHDRAWAL_LIMIT_TIER1', '50000', 6),
        decimal(r, 'MOONDRAFT_WITHDRAWAL_LIMIT_TIER2', '1000000', 6),
      ],
      autoApproveUsdc: decimal(r, 'MOONDRAFT_WITHDRAWAL_AUTO_APPROVE', '1000', 6),
      addressHoldMs: r.int('MOONDRAFT_WITHDRAWAL_ADDRESS_HOLD_SEC', 86_400, 0, 30 * 86_400) * 1000,
    },
  };
  // Side ports: a collision would only show after the API port is up, as an uncaught EADDRINUSE;
  // a redirect port without TLS would silently not be served (listen.ts serves it with TLS only).
  if (config.httpRedirectPort !== undefined) {
    if (!tls) throw new ConfigError('MOONDRAFT_HTTP_REDIRECT_PORT', 'needs TLS (MOONDRAFT_TLS_CERT and MOONDRAFT_TLS_KEY): it redirects to the HTTPS port');
    if (config.httpRedirectPort === port) throw new ConfigError('MOONDRAFT_HTTP_REDIRECT_PORT', 'must differ from PORT');
  }
  if (r.raw('MOONDRAFT_METRICS_HOST') !== undefined) {
    if (config.metricsPort === undefined) throw new ConfigError('MOONDRAFT_METRICS_HOST', 'needs MOONDRAFT_METRICS_PORT (the API port listens on HOST)');
    if (config.metricsHost !== 'localhost' && isIP(config.metricsHost) === 0) throw new ConfigError('MOONDRAFT_METRICS_HOST', `must be an IP address or localhost (got ${JSON.stringify(config.metricsHost)})`);
  }
  if (config.metricsPort !== undefined) {
    if (config.metricsPort === port) throw new ConfigError('MOONDRAFT_METRICS_PORT', 'must differ from PORT');
    if (config.metricsPort === config.httpRedirectPort) throw new ConfigError('MOONDRAFT_METRICS_PORT', 'must differ from MOONDRAFT_HTTP_REDIRECT_PORT');
  }
  if (config.jwt.refreshIdleSec > config.jwt.refreshAbsoluteSec) {
    throw new ConfigError('MOONDRAFT_REFRESH_IDLE_DAYS', 'must not exceed MOONDRAFT_REFRESH_ABSOLUTE_DAYS');
  }
  if (config.audit.bufferCapacity < config.audit.batchSize) {
    throw new ConfigError('MOONDRAFT_AUDIT_BUFFER_CAPACITY', 'must be at least MOONDRAFT_AUDIT_BATCH_SIZE');
  }
  // The file holds nothing but these variables: a misspelt name (MOONDRAFT_ENVV: live) would
  // otherwise be ignored and its setting silently not apply.
  for (const name of Object.keys(fromFile)) {
    if (!r.asked.has(name)) throw new ConfigError(name, `in ${fileName} is not a moondraft variable (see the README's configuration table)`);
  }

  if (env === 'live') {
    if (!config.masterKey) throw new ConfigError('MOONDRAFT_MASTER_KEY', 'is required in live (MOONDRAFT_ENV=live); generate one with `openssl rand -base64 32`');
    if (!config.jwtKeysFileSupplied) throw new ConfigError('MOONDRAFT_JWT_KEYS_FILE', 'is required in live: the JWT signing keyset (`moondraft keys rotate-signing --file FILE` creates one)');
    if (!config.tls && trustedProxies.length === 0) {
      throw new ConfigError('MOONDRAFT_TLS_CERT', 'live needs TLS (MOONDRAFT_TLS_CERT and MOONDRAFT_TLS_KEY) or a trusted TLS-terminating proxy (MOONDRAFT_TRUSTED_PROXIES)');
    }
    // Sign-in messages (their EIP-4361 domain and URI) and the tokens' issuer name this origin:
    // derived from HOST:PORT they would name 127.0.0.1 or 0.0.0.0, which wallets cannot check.
    if (r.raw('MOONDRAFT_PUBLIC_URL') === undefined) throw new ConfigError('MOONDRAFT_PUBLIC_URL', 'is required in live: the https origin clients use (sign-in messages and tokens name it)');
    if (new URL(publicUrl).protocol !== 'https:') throw new ConfigError('MOONDRAFT_PUBLIC_URL', 'must be an https URL in live');
    // The audit trail's promise is two years (731 days: two calendar years with a leap day in them).
    if (config.audit.retentionDays < AUDIT_TWO_YEARS_DAYS) throw new ConfigError('MOONDRAFT_AUDIT_RETENTION_DAYS', `must be at least ${AUDIT_TWO_YEARS_DAYS} (two years, a 29 February included) in live`);
  }
  return config;
}
