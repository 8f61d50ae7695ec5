import type { Services } from '../../services.js';
import type { App } from '../types.js';
import { accountRoutes } from './account.js';
import { systemRoutes } from './system.js';
import { marketRoutes } from './market.js';
import { tradingRoutes } from './trading.js';
import { sandboxRoutes } from './sandbox.js';
import { tradingAdminRoutes } from './trading-admin.js';

/** Every route module, one per feature. Each registers its routes with a declared permission. */
export async function registerRoutes(app: App, services: Services): Promise<void> {
  systemRoutes(app, services);
  accountRoutes(app, services);
  marketRoutes(app, services);
  tradingRoutes(app, services);
  sandboxRoutes(app, services);
  tradingAdminRoutes(app, services);
}
