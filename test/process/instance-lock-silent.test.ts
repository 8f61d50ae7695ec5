import net from 'node:net';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { lockDatabaseForServe, runningDeadline } from '../../src/state/instance-lock.js';
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

  it.skipIf(!pgUp)('keeps the lock when this process, not the connection, was stalled: an answer waiting in the socket while the event loop was held is read, not taken for a dead connection', async () => {
    const config = loadConfig({ DATABASE_URL: PG_URL, MOONDRAFT_PG_SCHEMA: `md_stalled_${process.pid}`, MOONDRAFT_LOG_LEVEL: 'silent' });
    let lost: string | undefined;
    const lock = await lockDatabaseForServe(config, (reason) => {
      lost = reason;
    });
    // The next heartbeat question is sent, then, before its answer is read, the event loop is held
    // for longer than the heartbeat's deadline (a long synchronous task, a collection): PostgreSQL
    // answers at once, and the answer waits in the socket. Held in the same turn's check phase, so
    // that the loop's next step is its timers, before it reads the socket again.
    const query = pg.Client.prototype.query;
    let stalled = false;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const result = (query as (...a: unknown[]) => unknown).apply(this, args);
      if (!stalled && typeof args[0] === 'string' && args[0].includes('pg_locks')) {
        stalled = true;
        setImmediate(() => {
          const until = Date.now() + 6_500;
          while (Date.now() < until) {
            // held
          }
        });
      }
      return result;
    } as typeof query;
    try {
      const started = Date.now();
      while (!stalled && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 50));
      expect(stalled).toBe(true);
      // Two more heartbeats after the stall, answered as usual.
      await new Promise((r) => setTimeout(r, 11_000));
      expect(lost).toBeUndefined();
    } finally {
      pg.Client.prototype.query = query;
      lock.release();
    }
  }, 40_000);
});

describe('runningDeadline', () => {
  it('expires after its time has passed while the process runs, and counts a held event loop as at most two ticks', async () => {
    let expired = 0;
    const started = Date.now();
    runningDeadline(300, () => (expired = Date.now() - started), 20);
    // Held for 1 s, far past the deadline: that counts as 40 ms.
    const until = Date.now() + 1_000;
    while (Date.now() < until) {
      // held
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(expired).toBe(0);
    while (expired === 0 && Date.now() - started < 5_000) await new Promise((r) => setTimeout(r, 10));
    expect(expired).toBeGreaterThanOrEqual(1_000 + 250);
    // Cancelled, it never fires.
    let fired = false;
    const d = runningDeadline(50, () => (fired = true), 10);
    d.cancel();
    await new Promise((r) => setTimeout(r, 150));
    expect(fired).toBe(false);
  });
});
