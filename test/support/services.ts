import net from 'node:net';

/** Service URLs for suites that need PostgreSQL or Redis (CI sets MOONDRAFT_REQUIRE_SERVICES=1). */
export const PG_URL = process.env.MOONDRAFT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.MOONDRAFT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Whether something accepts TCP connections at the URL's host and port. A service that is not
 * running refuses at once; the 5 s bound is for a test worker whose event loop is busy loading
 * modules (a busy CI machine), where a short timer fired before the connect event was seen and a
 * running service was taken for absent: its suites were silently skipped.
 */
export function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(5000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Whether a service-backed suite can run. Without the service it is skipped with a visible
 * message, unless MOONDRAFT_REQUIRE_SERVICES=1, which turns the absence into a failure.
 */
export async function serviceAvailable(name: 'postgres' | 'redis'): Promise<boolean> {
  const url = name === 'postgres' ? PG_URL : REDIS_URL;
  const up = await reachable(url);
  if (!up) {
    if (process.env.MOONDRAFT_REQUIRE_SERVICES === '1') {
      throw new Error(`${name} is required (MOONDRAFT_REQUIRE_SERVICES=1) but does not answer at ${url}`);
    }
    console.warn(`\n  ⚠ SKIPPED: ${name} is not reachable at ${url}; its suites are skipped (set MOONDRAFT_REQUIRE_SERVICES=1 to fail instead)\n`);
  }
  return up;
}
