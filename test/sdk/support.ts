import { mkdtempSync, rmSync } from 'node:fs';
import { freePort } from '../support/process.js';
export { freePort } from '../support/process.js';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createMoondraft } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import { listen } from '../../src/http/listen.js';
import type { Clock } from '../../src/lib/clock.js';
import type { Services } from '../../src/services.js';
import { dropSchema, newIsolation } from '../support/server.js';
import { PG_URL, REDIS_URL, serviceAvailable } from '../support/services.js';

/** The backends these suites run on: embedded always, scale-out when PostgreSQL and Redis answer. */
export async function sdkBackends(): Promise<Array<'embedded' | 'scaleout'>> {
  const scaleout = (await serviceAvailable('redis')) && (await serviceAvailable('postgres'));
  return scaleout ? ['embedded', 'scaleout'] : ['embedded'];
}


/** A clock that reads the system time shifted by `shiftMs` (tests move it to expire tokens). */
export class ShiftedClock implements Clock {
  shiftMs = 0;
  constructor(shiftMs = 0) {
    this.shiftMs = shiftMs;
  }
  now(): number {
    return Date.now() + this.shiftMs;
  }
}

export interface RealServer {
  /** The base URL clients use: the real listening address, also the server's public URL. */
  url: string;
  config: Config;
  services: Services;
  logText(): string;
  close(): Promise<void>;
}

export interface RealServerOptions {
  backend?: 'embedded' | 'scaleout';
  /** The server's clock (default: system time). */
  clock?: Clock;
  /** Serve HTTPS with this certificate and key. */
  tls?: { certFile: string; keyFile: string };
  env?: Record<string, string>;
}

/**
 * A full Moondraft server listening on a real port (not `inject`): what the SDK talks to. Its public
 * URL is its real address, so EIP-4361 messages name the domain the client connects to.
 */
export async function startRealServer(options: RealServerOptions = {}): Promise<RealServer> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-sdk-'));
  const isolation = newIsolation();
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  let lastError: unknown;
  // The port is free when probed; another process could take it before we bind: try again then.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const scheme = options.tls ? 'https' : 'http';
    const config = loadConfig({
      MOONDRAFT_DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      MOONDRAFT_PUBLIC_URL: `${scheme}://127.0.0.1:${port}`,
      MOONDRAFT_LOG_LEVEL: 'warn',
      ...(options.tls ? { MOONDRAFT_TLS_CERT: options.tls.certFile, MOONDRAFT_TLS_KEY: options.tls.keyFile } : {}),
      ...(options.backend === 'scaleout' ? { DATABASE_URL: PG_URL, REDIS_URL, MOONDRAFT_PG_SCHEMA: isolation.pgSchema, MOONDRAFT_STATE_PREFIX: isolation.statePrefix } : {}),
      ...options.env,
    });
    const moondraft = await createMoondraft(config, {
      logDestination: sink,
      processMetrics: false,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.backend !== 'scaleout' ? { sqliteFile: ':memory:' } : {}),
    });
    let listening;
    try {
      listening = await listen(moondraft);
    } catch (err) {
      await moondraft.close();
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      lastError = err;
      continue;
    }
    return {
      url: config.publicUrl,
      config,
      services: moondraft.services,
      logText: () => lines.join(''),
      async close() {
        await listening.stop();
        rmSync(dataDir, { recursive: true, force: true });
        if (options.backend === 'scaleout') await dropSchema(isolation.pgSchema);
      },
    };
  }
  throw lastError;
}

/** Partner limits far above the defaults, for suites that test something other than rate limits. */
export async function raiseLimits(server: RealServer, accountId: string): Promise<void> {
  await server.services.partnerLimits.set(accountId, { market: 100_000, trading: 100_000, account: 100_000, tokens: 100_000 }, 'test');
}

/** The property names a type declares, listed at runtime: `Record<keyof T, true>` makes the compiler hold the list to the type. */
export function declaredFields<T>(fields: Record<keyof T, true>): string[] {
  return Object.keys(fields).sort();
}
