import net from 'node:net';

/**
 * A TCP proxy in front of the real Redis that a test can take away and bring back: `stop()`
 * refuses connections and cuts the open ones (Redis is gone), `start()` listens again on the
 * same port (Redis is back), `freeze()` keeps connections open but stops passing bytes (Redis
 * hangs), `thaw()` lets the held bytes through.
 */
export class RedisProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private frozen = false;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      if (!this.frozen) connect(pair);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  freeze(): void {
    this.frozen = true;
    for (const [a, b] of this.pairs) {
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
    }
  }

  thaw(): void {
    this.frozen = false;
    for (const pair of this.pairs) connect(pair);
  }
}

/** Held bytes stay buffered in the paused sockets and flow, in order, once piped again. */
function connect([a, b]: [net.Socket, net.Socket]): void {
  a.pipe(b);
  b.pipe(a);
}
