import type { Services } from '../../services.js';
import type { App } from '../types.js';
import { accountRoutes } from './account.js';
import { rateLimitRoutes } from './ratelimit.js';
import { systemRoutes } from './system.js';

/** Every route module, one per feature. Each registers its routes with a declared permission. */
export async function registerRoutes(app: App, services: Services): Promise<void> {
  systemRoutes(app, services);
  accountRoutes(app, services);
  rateLimitRoutes(app, services);
}
