import type { Config } from './config/index.js';
import { buildServer } from './http/server.js';
import type { App } from './http/types.js';
import { createServices, type ServiceOverrides, type Services } from './services.js';

export interface Moondraft {
  app: App;
  services: Services;
  /** Stops accepting, finishes in-flight requests, flushes buffers, closes store and state. */
  close(): Promise<void>;
}

/** The whole server, ready to `listen` or to `inject` requests in tests. */
export async function createMoondraft(config: Config, overrides: ServiceOverrides = {}): Promise<Moondraft> {
  const services = await createServices(config, overrides);
  // Migrated and started: from here a statement the database does not answer fails (503) instead of
  // holding its request for ever (one-off CLI commands, which may run long scans, keep no deadline).
  services.store.limitQueries(config.dbQueryTimeoutMs);
  let app: App;
  try {
    app = await buildServer(services);
    await app.ready();
  } catch (err) {
    await services.close();
    throw err;
  }
  return {
    app,
    services,
    async close() {
      await app.close();
      await services.close();
    },
  };
}
