import type { Services } from '../../services.js';
import type { App } from '../types.js';
import { accountRoutes } from './account.js';
import { adminAccountRoutes } from './admin-accounts.js';
import { authRoutes } from './auth.js';
import { sessionRoutes } from './sessions.js';
import { keyRoutes } from './keys.js';
import { auditRoutes } from './audit.js';
import { rateLimitRoutes } from './ratelimit.js';
import { systemRoutes } from './system.js';
import { marketRoutes } from './market.js';
import { tradingRoutes } from './trading.js';
import { sandboxRoutes } from './sandbox.js';
import { tradingAdminRoutes } from './trading-admin.js';
import { tokenRoutes } from './tokens.js';
import { withdrawalRoutes } from './withdrawals.js';

/** Every route module, one per feature. Each registers its routes with a declared permission. */
export async function registerRoutes(app: App, services: Services): Promise<void> {
  systemRoutes(app, services);
  accountRoutes(app, services);
  authRoutes(app, services);
  sessionRoutes(app, services);
  adminAccountRoutes(app, services);
  keyRoutes(app, services);
  auditRoutes(app, services);
  rateLimitRoutes(app, services);
  marketRoutes(app, services);
  tradingRoutes(app, services);
  sandboxRoutes(app, services);
  tradingAdminRoutes(app, services);
  tokenRoutes(app, services);
  withdrawalRoutes(app, services);
}
