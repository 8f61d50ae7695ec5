import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createMoondraft, type Moondraft } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import type { Clock } from '../../src/lib/clock.js';
import { PG_URL, REDIS_URL } from './services.js';

export interface TestServer extends Moondraft {
  config: Config;
  dataDir: string;
  /** Every log line the server wrote, parsed. */
  logs: Record<string, unknown>[];
  /** Raw log text (for "this secret appears nowhere" checks). */
  logText(): string;
}

export interface TestServerOptions {
  /** Extra environment variables (as a deployment would set them). */
  env?: Record<string, string>;
  /** `scaleout` runs on PostgreSQL (own schema) and Redis (own key prefix). */
  backend?: 'embedded' | 'scaleout';
  clock?: Clock;
  /** Use a SQLite file in the data dir instead of an in-memory database. */
  sqliteFile?: boolean;
  /** Share a data dir (and its secrets) with another server. */
  dataDir?: string;
  /** Share a schema / state prefix with another scale-out server. */
  isolation?: { pgSchema: string; statePrefix: string };
}

/** A full server for `app.inject` tests, isolated in its own data dir, schema and key prefix. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'moondraft-test-'));
  const isolation = options.isolation ?? newIsolation();
  const env: Record<string, string> = {
    MOONDRAFT_DATA_DIR: dataDir,
    MOONDRAFT_LOG_LEVEL: 'info',
    PORT: '0',
    ...(options.backend === 'scaleout'
      ? { DATABASE_URL: PG_URL, REDIS_URL, MOONDRAFT_PG_SCHEMA: isolation.pgSchema, MOONDRAFT_STATE_PREFIX: isolation.statePrefix }
      : {}),
    ...options.env,
  };
  const config = loadConfig(env);
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const moondraft = await createMoondraft(config, {
    logDestination: destination,
    processMetrics: false,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.backend !== 'scaleout' && !options.sqliteFile ? { sqliteFile: ':memory:' } : {}),
  });
  return {
    ...moondraft,
    config,
    dataDir,
    get logs() {
      return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    logText: () => lines.join('\n'),
    async close() {
      await moondraft.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (options.backend === 'scaleout' && !options.isolation) await dropSchema(isolation.pgSchema);
    },
  };
}

export function newIsolation(): { pgSchema: string; statePrefix: string } {
  const id = randomBytes(6).toString('hex');
  return { pgSchema: `t_${id}`, statePrefix: `t:${id}:` };
}

/**
 * Deletes every shared-state key of an isolation: what a Redis restart without persistence (or a
 * failover to an empty replica) leaves to the servers using it.
 */
export async function emptySharedState(isolation: { statePrefix: string }): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await redis.keys(`${isolation.statePrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}

type Injectable = { inject: (opts: InjectOptions) => Promise<unknown> };
type InjectOptions = { remoteAddress?: string; headers?: Record<string, string | string[] | undefined> } & Record<string, unknown>;

/**
 * Makes `app.inject` arrive as through a trusted TLS-terminating proxy at `proxy`: from that address,
 * with `X-Forwarded-Proto: https`, unless a call says otherwise. A live server without TLS of its
 * own accepts credentials only so (see http/stages/plaintext-credentials.ts).
 */
export function viaTlsProxy(app: Injectable, proxy: string): void {
  const inject = app.inject.bind(app);
  app.inject = (opts: InjectOptions) => inject({ remoteAddress: proxy, ...opts, headers: { 'x-forwarded-proto': 'https', ...(opts.headers ?? {}) } });
}
