import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.js';
import { runCli, startServerProcess } from '../support/process.js';
import { REDIS_URL, serviceAvailable } from '../support/services.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'md-cli-'));
const redisUp = await serviceAvailable('redis');

describe('moondraft CLI', () => {
  it('--help lists every foundation command', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const cmd of ['serve', 'migrate', 'dev-cert', 'role']) expect(stdout).toContain(cmd);
  });

  it('a bad configuration exits 1 with one clear line naming the variable', async () => {
    const { code, stderr, stdout } = await runCli(['serve'], { PORT: 'eighty', MOONDRAFT_DATA_DIR: tmp() });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toEqual(['moondraft: invalid configuration: PORT: must be a whole number from 0 to 65535 (got "eighty")']);
  });

  it.skipIf(!redisUp)('a start-up that fails half-way exits 1 instead of hanging on the connections it opened', async () => {
    // The Redis connection is open when the country database turns out unreadable: it must be
    // closed, or the process prints its error and never exits (a supervisor never sees it fail).
    const dataDir = tmp();
    writeFileSync(path.join(dataDir, 'bad.mmdb'), 'not a country database');
    const env = { MOONDRAFT_DATA_DIR: dataDir, REDIS_URL, MOONDRAFT_STATE_PREFIX: `md-cli-${process.pid}:`, MOONDRAFT_GEOIP_DB: path.join(dataDir, 'bad.mmdb'), PORT: '0' };
    for (const args of [['serve'], ['migrate']]) {
      const { code, stderr } = await runCli(args, env, 15_000);
      expect(code).toBe(1);
      expect(stderr).toContain('MOONDRAFT_GEOIP_DB');
    }
  }, 40_000);

  it('live without a master key refuses to start', async () => {
    const { code, stderr } = await runCli(['serve'], { MOONDRAFT_ENV: 'live', MOONDRAFT_DATA_DIR: tmp() });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('MOONDRAFT_MASTER_KEY');
  });

  it('a second server on the same data dir with in-process state refuses to start; the CLI still works beside it', async () => {
    // Its replay memory and limits would be its own: a signed request the first accepted would be
    // accepted again by the second.
    const dataDir = tmp();
    const first = await startServerProcess({ MOONDRAFT_DATA_DIR: dataDir });
    try {
      const second = await runCli(['serve'], { MOONDRAFT_DATA_DIR: dataDir, PORT: '0' });
      expect(second.code).toBe(1);
      expect(second.stderr.trim().split('\n')).toHaveLength(1);
      expect(second.stderr).toMatch(/^moondraft: invalid configuration: MOONDRAFT_DATA_DIR: another moondraft server already serves/);
      expect((await runCli(['migrate'], { MOONDRAFT_DATA_DIR: dataDir })).code).toBe(0);
    } finally {
      expect(await first.stop()).toBe(0);
    }
    // Once the first has stopped, the data dir is free again.
    const again = await startServerProcess({ MOONDRAFT_DATA_DIR: dataDir });
    expect(await again.stop()).toBe(0);
  }, 90_000);

  it('migrate, then role sets a role offline', async () => {
    const dataDir = tmp();
    expect((await runCli(['migrate'], { MOONDRAFT_DATA_DIR: dataDir })).code).toBe(0);
    const wallet = '0x52908400098527886E0F7030069857D2E4169EE7';
    const r = await runCli(['role', wallet, 'auditor'], { MOONDRAFT_DATA_DIR: dataDir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const store = await openStore({ dataDir });
    const row = await store.db.selectFrom('accounts').selectAll().where('wallet', '=', wallet.toLowerCase()).executeTakeFirstOrThrow();
    await store.close();
    expect(row.role).toBe('auditor');
    const bad = await runCli(['role', wallet, 'superuser'], { MOONDRAFT_DATA_DIR: dataDir });
    expect(bad.code).toBe(1);
  });
});

describe('TLS', () => {
  it('dev-cert writes a pair; the server then speaks TLS 1.3 only, sends HSTS, and the plain port only redirects', async () => {
    const dir = tmp();
    const made = await runCli(['dev-cert', '--dir', dir], { MOONDRAFT_DATA_DIR: dir });
    expect(made.code).toBe(0);
    const certFile = path.join(dir, 'dev-cert.pem');
    const keyFile = path.join(dir, 'dev-key.pem');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const ca = readFileSync(certFile);

    const server = await startServerProcess({
      MOONDRAFT_DATA_DIR: dir,
      MOONDRAFT_TLS_CERT: certFile,
      MOONDRAFT_TLS_KEY: keyFile,
      MOONDRAFT_HTTP_REDIRECT_PORT: '18443',
      MOONDRAFT_PUBLIC_URL: 'https://localhost:18444',
      PORT: '18444',
      HOST: '127.0.0.1',
    });
    try {
      const res = await get(https, 'https://localhost:18444/health', { ca });
      expect(res.status).toBe(200);
      expect(res.headers['strict-transport-security']).toMatch(/max-age=\d+/);
      expect(res.tlsVersion).toBe('TLSv1.3');

      await expect(get(https, 'https://localhost:18444/health', { ca, maxVersion: 'TLSv1.2' })).rejects.toThrow();

      const redirect = await get(http, 'http://127.0.0.1:18443/api/v1/time?x=1', { headers: { host: 'evil.example' } });
      expect(redirect.status).toBe(308);
      expect(redirect.headers.location).toBe('https://localhost:18444/api/v1/time?x=1');
      expect(redirect.headers['x-request-id']).toMatch(/^req_[0-9a-f]{32}$/);
      expect(Number(redirect.headers['x-api-server-time'])).toBeGreaterThan(0);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});

function get(mod: typeof http | typeof https, url: string, options: Record<string, unknown>): Promise<{ status: number; headers: http.IncomingHttpHeaders; tlsVersion?: string }> {
  return new Promise((resolve, reject) => {
    const req = (mod as typeof https).get(url, { ...options, agent: false } as https.RequestOptions, (res) => {
      const tlsVersion = (res.socket as { getProtocol?: () => string }).getProtocol?.();
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, ...(tlsVersion ? { tlsVersion } : {}) }));
    });
    req.on('error', reject);
  });
}
