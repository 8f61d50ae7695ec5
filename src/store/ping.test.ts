import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropSchema } from '../../test/support/server.js';
import { PG_URL, serviceAvailable } from '../../test/support/services.js';
import { openStore, type Store } from './db.js';

/**
 * A TCP relay to PostgreSQL that can freeze: it keeps the connections open and stops passing
 * bytes, as a partitioned network or a frozen host does (no error, no close).
 */
async function freezableRelay(target: URL): Promise<{ port: number; freeze(): void; cut(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
    }
    client.on('data', (d) => void (frozen || upstream.write(d)));
    upstream.on('data', (d) => void (frozen || client.write(d)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => void (frozen = true),
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const pg = await serviceAvailable('postgres');

describe.skipIf(!pg)('store ping on a PostgreSQL that stops answering', () => {
  let relay: Awaited<ReturnType<typeof freezableRelay>>;
  let store: Store;
  const schema = `t_${randomBytes(6).toString('hex')}`;
  beforeAll(async () => {
    relay = await freezableRelay(new URL(PG_URL));
    const url = new URL(PG_URL);
    url.hostname = '127.0.0.1';
    url.port = String(relay.port);
    store = await openStore({ databaseUrl: url.toString(), pgSchema: schema, dataDir: '/tmp' });
  });
  afterAll(async () => {
    await relay.close();
    await store.close().catch(() => {});
    await dropSchema(schema);
  });

  it('answers false within its bound instead of hanging', async () => {
    expect(await store.ping()).toBe(true);
    relay.freeze();
    // Without the bound this never settles (the test times out).
    expect(await store.ping(500)).toBe(false);
  });
});

describe.skipIf(!pg)('a PostgreSQL connection that drops in the middle of a query', () => {
  it('fails that query, and the process carries on (no uncaught error event)', async () => {
    const relay = await freezableRelay(new URL(PG_URL));
    const url = new URL(PG_URL);
    url.hostname = '127.0.0.1';
    url.port = String(relay.port);
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const store = await openStore({ databaseUrl: url.toString(), pgSchema: schema, dataDir: '/tmp' });
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => void uncaught.push(err);
    process.prependListener('uncaughtException', onUncaught);
    try {
      const running = sql`select pg_sleep(5)`.execute(store.db);
      await new Promise((resolve) => setTimeout(resolve, 200));
      relay.cut();
      await expect(running).rejects.toThrow(/Connection terminated/);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(uncaught).toEqual([]);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
      await relay.close();
      await store.close().catch(() => {});
      await dropSchema(schema);
    }
  });
});
