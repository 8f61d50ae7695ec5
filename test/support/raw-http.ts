import net from 'node:net';
import tls from 'node:tls';

/**
 * Sends `bytes` on a new connection to 127.0.0.1:`port` (over TLS with `tls`, any certificate) and
 * collects what comes back until the server closes it. `trickle` is written every 200 ms meanwhile
 * (a slow client); after `giveUpMs` the connection is dropped. `afterMs`: when it closed.
 */
export function rawExchange(port: number | string, bytes: string, options: { tls?: boolean; trickle?: () => string; giveUpMs?: number } = {}): Promise<{ text: string; afterMs: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const send = () => socket.write(bytes);
    const socket = options.tls ? tls.connect({ port: Number(port), host: '127.0.0.1', rejectUnauthorized: false }, send) : net.connect(Number(port), '127.0.0.1', send);
    const trickle = options.trickle ? setInterval(() => socket.writable && socket.write(options.trickle!()), 200) : undefined;
    let text = '';
    socket.on('data', (d) => (text += d.toString('utf8')));
    // A slow client may see its connection reset: what it received so far is the answer.
    socket.on('error', (err) => (options.trickle ? undefined : reject(err)));
    socket.on('close', () => {
      clearInterval(trickle);
      resolve({ text, afterMs: Date.now() - started });
    });
    setTimeout(() => socket.destroy(), options.giveUpMs ?? 10_000).unref();
  });
}
