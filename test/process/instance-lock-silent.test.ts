import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { lockDatabaseForServe } from '../../src/state/instance-lock.js';
import { PG_URL, serviceAvailable } from '../support/services.js';

const pgUp = await serviceAvailable('postgres');

/** A TCP proxy to PostgreSQL that can go silent: no FIN, no RST, nothing (a dead host, a dropped NAT entry). */
async function silentProxy() {
  const target = new URL(PG_URL);
  const sockets: net.Socket[] = [];
  let silent = false;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: target.hostname, port: Number(target.port || 5432) });
    sockets.push(client, upstream);
    client.on('data', (d) => {
      if (!silent) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!silent) client.write(d);
    });
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const url = new URL(PG_URL);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    goSilent() {
      silent = true;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('the PostgreSQL schema lock, watched', () => {
  it.skipIf(!pgUp)('reports the lock lost when its connection goes silent (a dead primary, a dropped NAT entry), within seconds, not after the OS keepalive of minutes', async () => {
    // PostgreSQL's side of a silent connection ends after its keepalives (about 25 s), or at once
    // on a failover (an advisory lock is not replicated): another server may take the lock then.
    // The client's keepalive only sets the first probe (10 s); the OS then waits 75 s × 9 probes.
    const proxy = await silentProxy();
    const config = loadConfig({ DATABASE_URL: proxy.url, MOONDRAFT_PG_SCHEMA: `md_silent_${process.pid}`, MOONDRAFT_LOG_LEVEL: 'silent' });
    let lost: string | undefined;
    const lock = await lockDatabaseForServe(config, (reason) => {
      lost = reason;
    });
    try {
      proxy.goSilent();
      const started = Date.now();
      while (lost === undefined && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 100));
      expect(lost).toBeDefined();
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      lock.release();
      await proxy.close();
    }
  }, 30_000);
});
