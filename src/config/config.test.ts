import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMoondraft } from '../app.js';
import { writeDevCert } from '../cli/dev-cert.js';
import { Keyring } from '../security/crypto/keyring.js';
import { ConfigError, loadConfig } from './index.js';
import { readTlsFiles, resolveKeyring } from './secrets.js';
import { generateSigningKey, writeKeysetFile } from '../security/identity/signing-keys.js';
import { createServices } from '../services.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'md-config-'));

describe('loadConfig', () => {
  it('has working defaults: sandbox on 127.0.0.1:8080 with ./data', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ env: 'sandbox', host: '127.0.0.1', port: 8080, bodyLimit: 65536, databaseUrl: undefined, redisUrl: undefined });
    expect(c.dataDir).toBe(path.resolve('./data'));
    expect(c.publicUrl).toBe('http://127.0.0.1:8080');
    expect(c.domain).toBe('127.0.0.1:8080');
    expect(c.jwt).toMatchObject({ accessTtlSec: 3600, refreshAbsoluteSec: 30 * 86400, refreshIdleSec: 7 * 86400 });
  });

  it.each([
    ['0.0.0.0', 'http://127.0.0.1:8080'],
    ['::', 'http://127.0.0.1:8080'],
    ['::1', 'http://[::1]:8080'],
    ['192.0.2.7', 'http://192.0.2.7:8080'],
  ])('a sandbox listening on HOST=%s names %s in sign-in messages (an address a wallet can reach)', (host, origin) => {
    expect(loadConfig({ HOST: host }).publicUrl).toBe(origin);
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ MOONDRAFT_ENV: 'prod' }, 'MOONDRAFT_ENV'],
    [{ HOST: 'not a host' }, 'HOST'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ REDIS_URL: 'not a url' }, 'REDIS_URL'],
    [{ MOONDRAFT_TRUSTED_PROXIES: '10.0.0.0/99' }, 'MOONDRAFT_TRUSTED_PROXIES'],
    [{ MOONDRAFT_TLS_CERT: '/x.pem' }, 'MOONDRAFT_TLS_KEY'],
    [{ MOONDRAFT_BOOTSTRAP_ADMIN: 'bob' }, 'MOONDRAFT_BOOTSTRAP_ADMIN'],
    // One digit mistyped in an EIP-55 address (0x5aAeb6053F… as 0x5aAeb6054F…), which its checksum
    // catches, and base58 that is not 32 bytes: the admin meant would never be one; a typo must
    // stop start-up, not pass silently.
    [{ MOONDRAFT_BOOTSTRAP_ADMIN: '0x5aAeb6054F3E94C9b9A09f33669435E7Ef1BeAed' }, 'MOONDRAFT_BOOTSTRAP_ADMIN'],
    [{ MOONDRAFT_BOOTSTRAP_ADMIN: '2'.repeat(32) }, 'MOONDRAFT_BOOTSTRAP_ADMIN'],
    [{ MOONDRAFT_BODY_LIMIT: '10' }, 'MOONDRAFT_BODY_LIMIT'],
    [{ MOONDRAFT_PUBLIC_URL: 'ftp://x' }, 'MOONDRAFT_PUBLIC_URL'],
    [{ MOONDRAFT_REFRESH_IDLE_DAYS: '40' }, 'MOONDRAFT_REFRESH_IDLE_DAYS'],
    // Whole numbers in one spelling: no exponent, hex, sign or leading zeros (0700 is not octal here).
    [{ PORT: '1e3' }, 'PORT'],
    [{ PORT: '0x10' }, 'PORT'],
    [{ PORT: '+80' }, 'PORT'],
    [{ MOONDRAFT_RL_SUSPENSION_SEC: '0300' }, 'MOONDRAFT_RL_SUSPENSION_SEC'],
    // A list with an empty item is a typo (a value lost), not a shorter list.
    [{ MOONDRAFT_TRUSTED_PROXIES: '10.0.0.1,,10.0.0.2' }, 'MOONDRAFT_TRUSTED_PROXIES'],
    [{ MOONDRAFT_DDOS_EXEMPT: '127.0.0.1,' }, 'MOONDRAFT_DDOS_EXEMPT'],
  ])('refuses %o naming %s in one line', (env, variable) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as Error).message.startsWith(`${variable}:`)).toBe(true);
    expect((err as Error).message).not.toContain('\n');
  });

  it.each(['0.0.0.0/0', '::/0', '0.0.0.0/4', '::ffff:0.0.0.0/96', '::ffff:0:0/100', '2000::/3', '::/80', '10.0.0.1, 0.0.0.0/0'])(
    'refuses MOONDRAFT_TRUSTED_PROXIES=%s: a range that wide lets any client write its own X-Forwarded-For',
    (proxies) => {
      // Believing X-Forwarded-For from anyone lets a client choose its address: around API-key IP
      // allowlists, per-address limits and blocks; and in live it would pass for a TLS proxy.
      expect(() => loadConfig({ MOONDRAFT_TRUSTED_PROXIES: proxies })).toThrow(/^MOONDRAFT_TRUSTED_PROXIES: .*too wide/);
      expect(() =>
        loadConfig({ MOONDRAFT_ENV: 'live', MOONDRAFT_MASTER_KEY: Keyring.generateSpec(), MOONDRAFT_JWT_KEYS_FILE: '/k.json', MOONDRAFT_TRUSTED_PROXIES: proxies }),
      ).toThrow(/^MOONDRAFT_TRUSTED_PROXIES:/);
    },
  );

  it('accepts proxy addresses and private or provider ranges', () => {
    const proxies = ['10.0.0.1', '10.0.0.0/8', '172.16.0.0/12', '173.245.48.0/20', 'fd00::/8', '2400:cb00::/32', '::ffff:10.0.0.0/104'];
    expect(loadConfig({ MOONDRAFT_TRUSTED_PROXIES: proxies.join(',') }).trustedProxies).toEqual(proxies);
  });

  it('reads the open-order cap per account and market: 200 by default, 1 to 100000', () => {
    expect(loadConfig({}).trading.maxOpenOrders).toBe(200);
    expect(loadConfig({ MOONDRAFT_MAX_OPEN_ORDERS: '3' }).trading.maxOpenOrders).toBe(3);
    for (const bad of ['0', '100001', '2.5', 'many']) expect(() => loadConfig({ MOONDRAFT_MAX_OPEN_ORDERS: bad })).toThrow(/MOONDRAFT_MAX_OPEN_ORDERS/);
  });

  it('refuses a headers timeout set longer than the request timeout, rather than silently shortening it', () => {
    expect(() => loadConfig({ MOONDRAFT_REQUEST_TIMEOUT_MS: '5000', MOONDRAFT_HEADERS_TIMEOUT_MS: '20000' })).toThrow(/^MOONDRAFT_HEADERS_TIMEOUT_MS: .*MOONDRAFT_REQUEST_TIMEOUT_MS/);
    // Left to its default, it follows a shorter request timeout.
    expect(loadConfig({ MOONDRAFT_REQUEST_TIMEOUT_MS: '5000' }).timeouts).toMatchObject({ requestMs: 5000, headersMs: 5000 });
    expect(loadConfig({ MOONDRAFT_REQUEST_TIMEOUT_MS: '5000', MOONDRAFT_HEADERS_TIMEOUT_MS: '5000' }).timeouts.headersMs).toBe(5000);
  });

  it('refuses side ports that collide with the API port or each other, and a redirect port without TLS', () => {
    // Otherwise the second listen fails with an uncaught EADDRINUSE after the API port is up.
    expect(() => loadConfig({ PORT: '8080', MOONDRAFT_METRICS_PORT: '8080' })).toThrow(/^MOONDRAFT_METRICS_PORT: .*PORT/);
    const dir = tmp();
    writeFileSync(path.join(dir, 'c.pem'), 'x');
    writeFileSync(path.join(dir, 'k.pem'), 'x');
    const tlsEnv = { MOONDRAFT_TLS_CERT: path.join(dir, 'c.pem'), MOONDRAFT_TLS_KEY: path.join(dir, 'k.pem') };
    expect(() => loadConfig({ ...tlsEnv, MOONDRAFT_HTTP_REDIRECT_PORT: '8080' })).toThrow(/^MOONDRAFT_HTTP_REDIRECT_PORT: .*PORT/);
    expect(() => loadConfig({ ...tlsEnv, MOONDRAFT_HTTP_REDIRECT_PORT: '9000', MOONDRAFT_METRICS_PORT: '9000' })).toThrow(/^MOONDRAFT_METRICS_PORT: /);
    // Without TLS the redirect port would silently not exist.
    expect(() => loadConfig({ MOONDRAFT_HTTP_REDIRECT_PORT: '9000' })).toThrow(/^MOONDRAFT_HTTP_REDIRECT_PORT: .*TLS/);
    expect(loadConfig({ ...tlsEnv, PORT: '8443', MOONDRAFT_HTTP_REDIRECT_PORT: '8080', MOONDRAFT_METRICS_PORT: '9090' })).toMatchObject({ httpRedirectPort: 8080, metricsPort: 9090 });
  });

  it('listens for metrics on HOST unless MOONDRAFT_METRICS_HOST names another address, which needs a metrics port', () => {
    expect(loadConfig({ HOST: '0.0.0.0', MOONDRAFT_METRICS_PORT: '9090' }).metricsHost).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '0.0.0.0', MOONDRAFT_METRICS_PORT: '9090', MOONDRAFT_METRICS_HOST: '10.0.0.5' }).metricsHost).toBe('10.0.0.5');
    // Without its own port the metrics would be served on the API port, on HOST: the setting would do nothing.
    expect(() => loadConfig({ MOONDRAFT_METRICS_HOST: '127.0.0.1' })).toThrow(/^MOONDRAFT_METRICS_HOST: needs MOONDRAFT_METRICS_PORT/);
    expect(() => loadConfig({ MOONDRAFT_METRICS_PORT: '9090', MOONDRAFT_METRICS_HOST: 'metrics.internal' })).toThrow(/^MOONDRAFT_METRICS_HOST: must be an IP address/);
  });

  it('never echoes a secret value in an error', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db' })).toThrow(/DATABASE_URL/);
    try {
      loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db' });
    } catch (e) {
      expect((e as Error).message).not.toContain('hunter2');
    }
  });

  it('derives the sign-in domain from MOONDRAFT_PUBLIC_URL', () => {
    const c = loadConfig({ MOONDRAFT_PUBLIC_URL: 'https://api.example.com/' });
    expect(c.publicUrl).toBe('https://api.example.com');
    expect(c.domain).toBe('api.example.com');
    expect(c.jwt.issuer).toBe('https://api.example.com');
  });

  it('MOONDRAFT_PUBLIC_URL is an origin: no credentials (they would be shown in every sign-in message), path, query or fragment', () => {
    for (const url of ['https://admin:hunter2@api.example.com', 'https://api.example.com/base', 'https://api.example.com/?x=1', 'https://api.example.com/#f']) {
      expect(() => loadConfig({ MOONDRAFT_PUBLIC_URL: url })).toThrow(/^MOONDRAFT_PUBLIC_URL: must be an origin/);
    }
    try {
      loadConfig({ MOONDRAFT_PUBLIC_URL: 'https://admin:hunter2@api.example.com' });
    } catch (e) {
      expect((e as Error).message).not.toContain('hunter2');
    }
    // Nor when the URL does not even parse: a value with credentials in it is not repeated.
    expect(() => loadConfig({ MOONDRAFT_PUBLIC_URL: 'https://admin:hunter2@api example.com' })).toThrow(/^MOONDRAFT_PUBLIC_URL: must be a URL/);
    expect(() => loadConfig({ MOONDRAFT_PUBLIC_URL: 'https://admin:hunter2@api example.com' })).not.toThrow(/hunter2/);
    expect(() => loadConfig({ MOONDRAFT_PUBLIC_URL: 'not a url' })).toThrow(/"not a url"/);
  });

  it('normalizes MOONDRAFT_PUBLIC_URL, so that the redirect port and sign-in messages see one spelling of it', () => {
    const c = loadConfig({ MOONDRAFT_PUBLIC_URL: 'HTTPS://API.Example.COM:443/' });
    expect(c.publicUrl).toBe('https://api.example.com');
    expect(c.domain).toBe('api.example.com');
    expect(c.jwt.issuer).toBe('https://api.example.com');
  });

  it('reads an optional JSON file, with the environment winning', () => {
    const file = path.join(tmp(), 'moondraft.json');
    writeFileSync(file, JSON.stringify({ PORT: 9000, HOST: '0.0.0.0', MOONDRAFT_LOG_LEVEL: 'warn' }));
    const c = loadConfig({ MOONDRAFT_CONFIG: file, PORT: '9100' });
    expect(c.port).toBe(9100);
    expect(c.host).toBe('0.0.0.0');
    expect(c.logLevel).toBe('warn');
    writeFileSync(file, '{not json');
    expect(() => loadConfig({ MOONDRAFT_CONFIG: file })).toThrow(/MOONDRAFT_CONFIG/);
  });

  it('a config file naming an unknown variable (a typo) is refused, not silently ignored', () => {
    // {"MOONDRAFT_ENVV": "live"} would otherwise start a sandbox, {"MOONDRAFT_TRUSTED_PROXY": …} no proxy.
    const file = path.join(tmp(), 'moondraft.json');
    writeFileSync(file, JSON.stringify({ MOONDRAFT_ENVV: 'live', PORT: 9000 }));
    expect(() => loadConfig({ MOONDRAFT_CONFIG: file })).toThrow(/^MOONDRAFT_ENVV: .*not a moondraft variable/);
  });

  it('a null in the config file is refused rather than read as the text "null"', () => {
    const file = path.join(tmp(), 'moondraft.json');
    writeFileSync(file, JSON.stringify({ MOONDRAFT_JWT_KEYS_FILE: null }));
    expect(() => loadConfig({ MOONDRAFT_CONFIG: file })).toThrow(/^MOONDRAFT_JWT_KEYS_FILE: .*must be a string or number/);
  });

  it('a number in the config file that JSON cannot hold exactly is refused, not rounded', () => {
    // JSON.parse rounds an integer past 2^53: 100000000000000001 became "100000000000000000", a
    // different daily limit than the one written, accepted without a word.
    const file = path.join(tmp(), 'moondraft.json');
    writeFileSync(file, '{"MOONDRAFT_DAILY_LIMIT_ADMIN": 100000000000000001}');
    expect(() => loadConfig({ MOONDRAFT_CONFIG: file })).toThrow(/^MOONDRAFT_DAILY_LIMIT_ADMIN: .*as a string/);
    writeFileSync(file, '{"MOONDRAFT_DAILY_LIMIT_ADMIN": "100000000000000001", "MOONDRAFT_WITHDRAWAL_AUTO_APPROVE": 0.5, "PORT": 9000}');
    expect(loadConfig({ MOONDRAFT_CONFIG: file })).toMatchObject({ port: 9000, trading: { dailyLimitUsdc: { admin: '100000000000000001' } }, withdrawals: { autoApproveUsdc: '0.5' } });
  });

  it('an empty environment variable does not override the file (live must not fall back to sandbox)', () => {
    // docker-compose's `MOONDRAFT_ENV: ${MOONDRAFT_ENV}` with the variable unset passes an empty string.
    const file = path.join(tmp(), 'moondraft.json');
    writeFileSync(file, JSON.stringify({ MOONDRAFT_ENV: 'live', HOST: '0.0.0.0', MOONDRAFT_TRUSTED_PROXIES: '10.0.0.1', MOONDRAFT_PUBLIC_URL: 'https://api.example.test' }));
    expect(() => loadConfig({ MOONDRAFT_CONFIG: file, MOONDRAFT_ENV: '', HOST: ' ' })).toThrow(/^MOONDRAFT_MASTER_KEY: .*required in live/);
    const c = loadConfig({ MOONDRAFT_CONFIG: file, MOONDRAFT_ENV: '', HOST: '', MOONDRAFT_MASTER_KEY: Keyring.generateSpec(), MOONDRAFT_JWT_KEYS_FILE: '/k.json' });
    expect(c).toMatchObject({ env: 'live', host: '0.0.0.0', trustedProxies: ['10.0.0.1'] });
  });

  it('a config file that is not JSON is refused without quoting any of it (it may hold secrets)', () => {
    const file = path.join(tmp(), 'moondraft.json');
    const key = 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=';
    // An unquoted value, as in an env file: the JSON parser's own message quotes the text around it.
    writeFileSync(file, `{"MOONDRAFT_MASTER_KEY": ${key}, "PORT": 8080}`);
    expect(() => loadConfig({ MOONDRAFT_CONFIG: file })).toThrow(/^MOONDRAFT_CONFIG: .*not valid JSON/);
    try {
      loadConfig({ MOONDRAFT_CONFIG: file });
    } catch (e) {
      expect((e as Error).message).not.toContain(key.slice(0, 6));
    }
  });

  describe('live refuses to start without its secrets and transport security', () => {
    const keysFile = path.join(tmp(), 'jwt.json');
    const base = { MOONDRAFT_ENV: 'live', MOONDRAFT_MASTER_KEY: Keyring.generateSpec(), MOONDRAFT_JWT_KEYS_FILE: keysFile, MOONDRAFT_TRUSTED_PROXIES: '10.0.0.1', MOONDRAFT_PUBLIC_URL: 'https://api.example.test' };
    it('starts with everything supplied', () => {
      expect(loadConfig(base)).toMatchObject({ env: 'live', publicUrl: 'https://api.example.test', domain: 'api.example.test' });
    });
    it.each([
      ['MOONDRAFT_MASTER_KEY', 'MOONDRAFT_MASTER_KEY'],
      ['MOONDRAFT_JWT_KEYS_FILE', 'MOONDRAFT_JWT_KEYS_FILE'],
      ['MOONDRAFT_TRUSTED_PROXIES', 'MOONDRAFT_TLS_CERT'],
      // Sign-in messages would otherwise name HOST:PORT (127.0.0.1, 0.0.0.0), which no wallet can check.
      ['MOONDRAFT_PUBLIC_URL', 'MOONDRAFT_PUBLIC_URL'],
    ])('without %s', (missing, named) => {
      const env: Record<string, string> = { ...base };
      delete env[missing];
      expect(() => loadConfig(env)).toThrow(new RegExp(`^${named}:`));
    });
    it('TLS that names files that are not there does not count as TLS: refused at once, naming the variable', () => {
      const dir = tmp();
      const cert = path.join(dir, 'cert.pem');
      const key = path.join(dir, 'key.pem');
      const env: Record<string, string> = { ...base, MOONDRAFT_TLS_CERT: cert, MOONDRAFT_TLS_KEY: key };
      delete env.MOONDRAFT_TRUSTED_PROXIES;
      expect(() => loadConfig(env)).toThrow(/^MOONDRAFT_TLS_CERT: no such file/);
      writeFileSync(cert, 'x');
      expect(() => loadConfig(env)).toThrow(/^MOONDRAFT_TLS_KEY: no such file/);
      writeFileSync(key, 'x');
      expect(loadConfig(env).tls).toEqual({ certFile: cert, keyFile: key });
    });
    it('needs an https public URL, and audit retention of at least two years', () => {
      expect(() => loadConfig({ ...base, MOONDRAFT_PUBLIC_URL: 'http://api.example.test' })).toThrow(/^MOONDRAFT_PUBLIC_URL: must be an https URL/);
      expect(loadConfig({ ...base, MOONDRAFT_PUBLIC_URL: 'HTTPS://api.example.test' }).env).toBe('live'); // the scheme is case-insensitive
      expect(() => loadConfig({ ...base, MOONDRAFT_AUDIT_RETENTION_DAYS: '730' })).toThrow(/^MOONDRAFT_AUDIT_RETENTION_DAYS: must be at least 731/);
      expect(loadConfig({ ...base, MOONDRAFT_AUDIT_RETENTION_DAYS: '731' }).audit.retentionDays).toBe(731);
      // A sandbox may keep less, for tests and demos.
      expect(loadConfig({ MOONDRAFT_DATA_DIR: tmp(), MOONDRAFT_AUDIT_RETENTION_DAYS: '1' }).audit.retentionDays).toBe(1);
    });
  });
});

describe('sandbox secrets', () => {
  it('generates the master key once, mode 0600, and reuses it', () => {
    const dataDir = tmp();
    const config = loadConfig({ MOONDRAFT_DATA_DIR: dataDir });
    const a = resolveKeyring(config);
    const file = path.join(dataDir, 'master.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const before = readFileSync(file, 'utf8');
    const b = resolveKeyring(config);
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(b.decrypt(a.encrypt('x', 'id'), 'id')).toBe('x');
  });

  it('refuses a master key that is not the one the store was sealed with, before anything is written under it', async () => {
    const dataDir = tmp();
    const right = Keyring.generateSpec(1);
    const env = { MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' as const };
    const first = await createServices(loadConfig({ ...env, MOONDRAFT_MASTER_KEY: right }), { processMetrics: false });
    await first.accounts.setRole('0x52908400098527886E0F7030069857D2E4169EE7', 'auditor', 'cli');
    await first.close();
    // Another deployment's key, or one mistyped: version 1 too, but it opens none of the records.
    const wrong = loadConfig({ ...env, MOONDRAFT_MASTER_KEY: Keyring.generateSpec(1) });
    await expect(createServices(wrong, { processMetrics: false })).rejects.toThrow(/^MOONDRAFT_MASTER_KEY: .*does not decrypt/);
    const again = await createServices(loadConfig({ ...env, MOONDRAFT_MASTER_KEY: right }), { processMetrics: false });
    try {
      expect((await again.audit.verify()).ok).toBe(true);
    } finally {
      await again.close();
    }
  }, 30_000);

  it('refuses a master key that lacks the version the store\'s newest data was sealed with', async () => {
    const dataDir = tmp();
    const env = { MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' as const };
    const v1 = Keyring.generateSpec(1);
    const both = `${v1},${Keyring.generateSpec(2)}`;
    const first = await createServices(loadConfig({ ...env, MOONDRAFT_MASTER_KEY: both }), { processMetrics: false });
    await first.accounts.setRole('0x52908400098527886E0F7030069857D2E4169EE7', 'auditor', 'cli');
    await first.close();
    // The spec from before a rotation (version 1 only), or another deployment's version 3: neither
    // opens what version 2 sealed, and what it wrote could not be read beside it.
    await expect(createServices(loadConfig({ ...env, MOONDRAFT_MASTER_KEY: v1 }), { processMetrics: false })).rejects.toThrow(/^MOONDRAFT_MASTER_KEY: .*version 2/);
    await expect(createServices(loadConfig({ ...env, MOONDRAFT_MASTER_KEY: Keyring.generateSpec(3) }), { processMetrics: false })).rejects.toThrow(/^MOONDRAFT_MASTER_KEY: .*version 2/);
  }, 30_000);

  it('refuses a malformed MOONDRAFT_MASTER_KEY without printing it', () => {
    const config = loadConfig({ MOONDRAFT_DATA_DIR: tmp(), MOONDRAFT_MASTER_KEY: 'c2hvcnQ=' });
    expect(() => resolveKeyring(config)).toThrow(/^MOONDRAFT_MASTER_KEY: .*32 bytes/);
    try {
      resolveKeyring(config);
    } catch (e) {
      expect((e as Error).message).not.toContain('c2hvcnQ');
    }
  });

  it('refuses a master key of one byte repeated (all zeros, a placeholder): it protects nothing', () => {
    for (const spec of [Buffer.alloc(32).toString('base64'), `1:${Keyring.generateSpec(1).slice(2)},2:${Buffer.alloc(32, 0xff).toString('base64')}`]) {
      const config = loadConfig({ MOONDRAFT_DATA_DIR: tmp(), MOONDRAFT_MASTER_KEY: spec });
      expect(() => resolveKeyring(config)).toThrow(/^MOONDRAFT_MASTER_KEY: .*not a random key/);
    }
  });

  it('a signing keyset that is not JSON is refused without quoting any of it (it holds private keys)', async () => {
    const dataDir = tmp();
    const file = path.join(dataDir, 'jwt.json');
    // A hand-edited keyset with its quotes lost: the JSON parser's message quotes the text around it.
    writeFileSync(file, '{"keys":[{"kid":"k1","privateKeyPem":MIIEvQIBADANBgkqhkiG9w0BAQEFAASC}]}', { mode: 0o600 });
    const config = loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_JWT_KEYS_FILE: file, MOONDRAFT_LOG_LEVEL: 'silent' });
    const err = await createServices(config, { processMetrics: false }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/not valid JSON/);
    expect(err?.message).not.toContain('MIIEv');
  });

  it('a signing keyset that is missing or unusable stops start-up as a bad MOONDRAFT_JWT_KEYS_FILE, in one line', async () => {
    // `moondraft serve` prints a ConfigError as "invalid configuration: VARIABLE: …"; anything else
    // came out as a bare ENOENT, an OpenSSL decoder code or a TypeError, naming nothing to fix.
    const dataDir = tmp();
    const notRsa = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    // jose refuses to sign or verify RS256 with a modulus under 2048 bits: such a keyset loaded,
    // and then every sign-in and refresh answered 500.
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const entry = (privateKeyPem: unknown) => JSON.stringify({ keys: [{ kid: 'k1', createdAt: 1, retiredAt: null, privateKeyPem }] });
    const cases: [string, string | undefined, RegExp?][] = [
      ['missing.json', undefined],
      ['not-pem.json', entry('-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n')],
      ['no-pem.json', JSON.stringify({ keys: [{ kid: 'k1', createdAt: 1, retiredAt: null }] })],
      ['number-pem.json', entry(12345)],
      // RS256 needs an RSA key: an EC key would load, and then fail every sign-in with a 500.
      ['ec.json', entry(notRsa)],
      ['short-rsa.json', entry(short), /2048/],
    ];
    for (const [name, contents, reason] of cases) {
      const file = path.join(dataDir, name);
      if (contents !== undefined) writeFileSync(file, contents, { mode: 0o600 });
      const config = loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_JWT_KEYS_FILE: file, MOONDRAFT_LOG_LEVEL: 'silent' });
      const err = await createServices(config, { processMetrics: false, sqliteFile: ':memory:' }).then(
        async (s) => {
          await s.close();
          return undefined;
        },
        (e: unknown) => e as Error,
      );
      expect(err, name).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable, name).toBe('MOONDRAFT_JWT_KEYS_FILE');
      expect(err!.message, name).toContain(file);
      expect(err!.message, name).not.toContain('\n');
      expect(err!.message, name).not.toContain('12345');
      expect(err!.message, name).not.toContain('PRIVATE KEY');
      if (reason) expect(err!.message, name).toMatch(reason);
    }
  });

  it('refuses key files other users may read or write (master.key, the signing keyset, a config file holding the master key, the TLS key), naming the file and the fix', async () => {
    const dataDir = tmp();
    const config = loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' });
    resolveKeyring(config);
    const masterKey = path.join(dataDir, 'master.key');
    // Running as root, the file is root's: group-readable is allowed there (see the next test).
    const root = process.getuid?.() === 0;
    for (const mode of [root ? 0o660 : 0o640, 0o604, 0o620]) {
      chmodSync(masterKey, mode);
      expect(() => resolveKeyring(config)).toThrow(new RegExp(`^MOONDRAFT_MASTER_KEY: ${masterKey}.*mode 0${mode.toString(8)}.*chmod ${root ? '640' : '600'}`));
    }
    chmodSync(masterKey, 0o400);
    expect(() => resolveKeyring(config)).not.toThrow();

    const keyset = path.join(dataDir, 'jwt.json');
    writeKeysetFile(keyset, [generateSigningKey(Date.now())]);
    chmodSync(keyset, 0o644);
    const err = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_JWT_KEYS_FILE: keyset, MOONDRAFT_LOG_LEVEL: 'silent' }), { processMetrics: false, sqliteFile: ':memory:' }).then(
      async (s) => {
        await s.close();
        return undefined;
      },
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('MOONDRAFT_JWT_KEYS_FILE');
    expect(err!.message).toMatch(root ? /mode 0644.*chmod 640/ : /mode 0644.*chmod 600/);

    const file = path.join(dataDir, 'config.json');
    writeFileSync(file, JSON.stringify({ MOONDRAFT_MASTER_KEY: Keyring.generateSpec() }), { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(() => loadConfig({ MOONDRAFT_CONFIG: file })).toThrow(/^MOONDRAFT_CONFIG: .*mode 0644.*MOONDRAFT_MASTER_KEY/);
    chmodSync(file, 0o600);
    expect(() => loadConfig({ MOONDRAFT_CONFIG: file })).not.toThrow();
    // A config file without the master key may be read by others.
    writeFileSync(file, JSON.stringify({ PORT: 9000 }));
    chmodSync(file, 0o644);
    expect(loadConfig({ MOONDRAFT_CONFIG: file }).port).toBe(9000);

    const { certFile, keyFile } = await writeDevCert(dataDir, ['localhost']);
    expect(() => readTlsFiles({ certFile, keyFile })).not.toThrow();
    chmodSync(keyFile, 0o644);
    expect(() => readTlsFiles({ certFile, keyFile })).toThrow(/^MOONDRAFT_TLS_KEY: .*mode 0644/);
    // The certificate is public.
    chmodSync(keyFile, 0o600);
    chmodSync(certFile, 0o644);
    expect(() => readTlsFiles({ certFile, keyFile })).not.toThrow();
  });

  it.skipIf(process.getuid?.() !== 0)('running as root, a key file root owns is held to the rule for root-owned files (group-readable, 0640 or 0440, allowed), as under any other user', async () => {
    // A secret the platform mounts (a Kubernetes Secret with defaultMode 0440, a file of group
    // ssl-cert) into a container whose server runs as root: the same file a non-root server takes.
    const dataDir = tmp();
    const config = loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' });
    resolveKeyring(config);
    const masterKey = path.join(dataDir, 'master.key');
    expect(statSync(masterKey).uid).toBe(0);
    for (const mode of [0o640, 0o440]) {
      chmodSync(masterKey, mode);
      expect(() => resolveKeyring(config)).not.toThrow();
    }
    const { certFile, keyFile } = await writeDevCert(dataDir, ['localhost']);
    chmodSync(keyFile, 0o440);
    expect(() => readTlsFiles({ certFile, keyFile })).not.toThrow();
    // Writable by the group, or readable by others, is refused all the same.
    chmodSync(keyFile, 0o660);
    expect(() => readTlsFiles({ certFile, keyFile })).toThrow(/^MOONDRAFT_TLS_KEY: .*mode 0660.*chmod 640/);
  });

  it('keeps the SQLite database and its WAL to the owner, even in a data dir that already existed (0755)', async () => {
    const dataDir = tmp();
    chmodSync(dataDir, 0o755);
    const services = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }), { processMetrics: false });
    try {
      for (const name of ['moondraft.sqlite', 'moondraft.sqlite-wal']) {
        const file = path.join(dataDir, name);
        expect(existsSync(file)).toBe(true);
        expect((statSync(file).mode & 0o777).toString(8)).toBe('600');
      }
    } finally {
      await services.close();
    }
  });

  it('refuses a data dir other users may write to: they could plant master.key or the signing keys', async () => {
    const dataDir = tmp();
    chmodSync(dataDir, 0o777);
    const planted = Keyring.generateSpec(1);
    writeFileSync(path.join(dataDir, 'master.key'), `${planted}\n`);
    await expect(createServices(loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }), { processMetrics: false })).rejects.toThrow(
      /^MOONDRAFT_DATA_DIR: .*writable by other users/,
    );
    chmodSync(dataDir, 0o1777); // sticky, like /tmp: others still create files in it
    expect(() => resolveKeyring(loadConfig({ MOONDRAFT_DATA_DIR: dataDir }))).toThrow(/^MOONDRAFT_DATA_DIR: /);
  });
});

describe('data dir privacy', () => {
  it('refuses a group-writable data dir: the other members of the group could plant master.key', () => {
    const dataDir = tmp();
    chmodSync(dataDir, 0o770);
    expect(() => resolveKeyring(loadConfig({ MOONDRAFT_DATA_DIR: dataDir }))).toThrow(/^MOONDRAFT_DATA_DIR: .*writable by other users/);
  });

  it('refuses a data dir inside a directory others may write to (they could rename it and put their own in its place)', () => {
    const parent = tmp();
    const dataDir = path.join(parent, 'data');
    mkdirSync(dataDir, { mode: 0o700 });
    chmodSync(parent, 0o777);
    expect(() => resolveKeyring(loadConfig({ MOONDRAFT_DATA_DIR: dataDir }))).toThrow(new RegExp(`^MOONDRAFT_DATA_DIR: ${parent} is writable by other users`));
    // Group-writable above the data dir is a checkout made under umask 002 (user private groups):
    // accepted, or `npm start` would refuse its own data dir there from the second run on.
    chmodSync(parent, 0o775);
    expect(() => resolveKeyring(loadConfig({ MOONDRAFT_DATA_DIR: dataDir }))).not.toThrow();
    // Sticky, like /tmp itself: others cannot rename what is not theirs.
    chmodSync(parent, 0o1777);
    expect(() => resolveKeyring(loadConfig({ MOONDRAFT_DATA_DIR: dataDir }))).not.toThrow();
  });

  it('judges the directory a symlinked data dir points to, and its parents', () => {
    const parent = tmp();
    const real = path.join(parent, 'real');
    mkdirSync(real, { mode: 0o700 });
    chmodSync(parent, 0o777);
    const link = path.join(tmp(), 'data');
    symlinkSync(real, link);
    expect(() => resolveKeyring(loadConfig({ MOONDRAFT_DATA_DIR: link }))).toThrow(/^MOONDRAFT_DATA_DIR: .*writable by other users/);
  });
});

describe('TLS files', () => {
  it('a certificate or key file that is not usable stops start-up naming its variable, in one line', async () => {
    // Named by loadConfig only as existing files: what they hold reached Node's TLS as it was, and
    // `serve` said "moondraft: error:0480006C:PEM routines::no start line", naming nothing to fix.
    const dir = tmp();
    const a = await writeDevCert(path.join(dir, 'a'), ['localhost']);
    const b = await writeDevCert(path.join(dir, 'b'), ['localhost']);
    const garbage = path.join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a pem file\n');
    const cases: [string, string, string][] = [
      [garbage, a.keyFile, 'MOONDRAFT_TLS_CERT'],
      [a.certFile, garbage, 'MOONDRAFT_TLS_KEY'],
      [a.keyFile, a.keyFile, 'MOONDRAFT_TLS_CERT'],
      [a.certFile, a.certFile, 'MOONDRAFT_TLS_KEY'],
      // Both fine alone, but not a pair: the key is another certificate's.
      [a.certFile, b.keyFile, 'MOONDRAFT_TLS_KEY'],
    ];
    for (const [cert, key, variable] of cases) {
      const config = loadConfig({ MOONDRAFT_DATA_DIR: tmp(), MOONDRAFT_TLS_CERT: cert, MOONDRAFT_TLS_KEY: key, MOONDRAFT_LOG_LEVEL: 'silent', PORT: '0' });
      const err = await createMoondraft(config, { processMetrics: false, sqliteFile: ':memory:' }).then(
        async (m) => {
          await m.close();
          return undefined;
        },
        (e: unknown) => e as Error,
      );
      const label = `${path.basename(cert)} + ${path.basename(key)}`;
      expect(err, label).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable, label).toBe(variable);
      expect(err!.message, label).not.toContain('\n');
      expect(err!.message, label).not.toContain('PRIVATE KEY');
    }
  }, 60_000);
});

describe('TLS in live', () => {
  const startLive = async (certFile: string, keyFile: string) => {
    const dir = tmp();
    const keyset = path.join(dir, 'jwt.json');
    writeKeysetFile(keyset, [generateSigningKey(Date.now())]);
    const config = loadConfig({
      MOONDRAFT_ENV: 'live',
      MOONDRAFT_DATA_DIR: dir,
      MOONDRAFT_MASTER_KEY: Keyring.generateSpec(1),
      MOONDRAFT_JWT_KEYS_FILE: keyset,
      MOONDRAFT_PUBLIC_URL: 'https://localhost:8443',
      MOONDRAFT_TLS_CERT: certFile,
      MOONDRAFT_TLS_KEY: keyFile,
      MOONDRAFT_LOG_LEVEL: 'silent',
      PORT: '0',
    });
    return createMoondraft(config, { processMetrics: false, sqliteFile: ':memory:' }).then(
      async (m) => {
        await m.close();
        return undefined;
      },
      (e: unknown) => e as Error,
    );
  };

  it('refuses the self-signed certificate of `moondraft dev-cert`: no client could verify it, naming MOONDRAFT_TLS_CERT in one line', async () => {
    const dev = await writeDevCert(tmp(), ['localhost']);
    const err = await startLive(dev.certFile, dev.keyFile);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('MOONDRAFT_TLS_CERT');
    expect(err!.message).toMatch(/self-signed/);
    expect(err!.message).not.toContain('\n');
  }, 60_000);

  it('starts with a certificate a CA issued (and the sandbox still takes the dev certificate)', async () => {
    const { generate } = await import('selfsigned');
    const dir = tmp();
    const ca = await generate([{ name: 'commonName', value: 'Test CA' }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [{ name: 'basicConstraints', cA: true }, { name: 'keyUsage', keyCertSign: true, digitalSignature: true }],
    });
    const leaf = await generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048,
      algorithm: 'sha256',
      ca: { cert: ca.cert, key: ca.private },
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
    });
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    writeFileSync(certFile, leaf.cert);
    writeFileSync(keyFile, leaf.private, { mode: 0o600 });
    expect(await startLive(certFile, keyFile)).toBeUndefined();
    const dev = await writeDevCert(tmp(), ['localhost']);
    expect(() => readTlsFiles(dev)).not.toThrow();
  }, 60_000);
});

describe('live on a store a sandbox used', () => {
  it('refuses to start: the sandbox faucet’s test money would be traded and withdrawn in live (naming MOONDRAFT_ENV)', async () => {
    const { startTestServer } = await import('../../test/support/server.js');
    const dataDir = tmp();
    const sandbox = await startTestServer({ sqliteFile: true, dataDir });
    const account = await sandbox.services.accounts.findOrCreate('0x' + '11'.repeat(20));
    if (!account.ok) throw new Error(account.detail);
    const granted = await sandbox.services.trading.faucet.grant(account.value.id, 'USDC', '10');
    expect(granted.ok).toBe(true);
    await sandbox.close();
    // The sandbox's own generated secrets, given to live explicitly, so that only the store's past decides.
    const liveEnv = {
      MOONDRAFT_ENV: 'live',
      MOONDRAFT_MASTER_KEY: readFileSync(path.join(dataDir, 'master.key'), 'utf8').trim(),
      MOONDRAFT_JWT_KEYS_FILE: path.join(dataDir, 'jwt-signing-keys.json'),
      MOONDRAFT_TRUSTED_PROXIES: '127.0.0.1',
      MOONDRAFT_PUBLIC_URL: 'https://api.example.test',
    };
    const err = await startTestServer({ sqliteFile: true, dataDir, env: liveEnv }).then(
      async (s) => {
        await s.close();
        return undefined;
      },
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('MOONDRAFT_ENV');
    expect(err!.message).toMatch(/sandbox has used it/);
    // A live store of its own starts (the same secrets, a fresh data dir).
    const fresh = await startTestServer({ sqliteFile: true, env: liveEnv });
    await fresh.close();
  }, 60_000);
});
