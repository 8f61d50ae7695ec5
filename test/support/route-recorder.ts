import type { FastifyInstance } from 'fastify';

/** One route as Fastify registered it (one entry per method). */
export interface RecordedRoute {
  method: string;
  url: string;
  permission: unknown;
  schema: Record<string, unknown> | undefined;
}

/**
 * The `fastify` module with its factory wrapped so that every instance records its routes into
 * `into` (an onRoute hook), for suites that walk every route the real server registers. Use it
 * from a `vi.mock('fastify', …)` factory, with `into` from `vi.hoisted`:
 *   vi.mock('fastify', async (orig) => (await import('../support/route-recorder.js')).recordingFastify(await orig(), registered));
 */
export function recordingFastify<M extends { default: unknown }>(actual: M, into: RecordedRoute[]): M {
  const create = actual.default as (options?: unknown) => FastifyInstance;
  const recording = (options?: unknown) => {
    const app = create(options);
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) into.push({ method, url: route.url, permission: route.config?.permission, schema: route.schema as Record<string, unknown> | undefined });
    });
    return app;
  };
  Object.assign(recording, actual.default);
  return { ...actual, default: recording, fastify: recording };
}
