import { Type } from '@sinclair/typebox';
import { ApiError, unwrap } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import { formatAmount } from '../../trading/money.js';
import { actorOf } from '../../trading/orders/types.js';
import type { App } from '../types.js';
import { AssetSymbol, Decimal, Security } from './trading-schemas.js';

/** Sandbox-only helpers. Not registered at all in live (the route does not exist there). */
export function sandboxRoutes(app: App, services: Services): void {
  if (services.config.env !== 'sandbox') return;
  app.post(
    '/api/v1/sandbox/faucet',
    {
      config: { permission: 'sandbox:faucet' },
      schema: {
        tags: ['sandbox'],
        summary: 'Credit test funds (sandbox only; bounded per call and per 24 h)',
        security: Security,
        body: Type.Object({ asset: AssetSymbol, amount: Decimal }, { additionalProperties: false }),
        response: { 200: Type.Object({ asset: Type.String(), amount: Type.String(), available: Type.String() }) },
      },
    },
    async (request) => {
      const p = request.principal;
      if (p.kind === 'anonymous') throw new ApiError('unauthenticated');
      const g = unwrap(await services.trading.faucet.grant(p.accountId, request.body.asset, request.body.amount, actorOf(p)));
      return { asset: g.asset, amount: formatAmount(g.amount, g.decimals), available: formatAmount(g.available, g.decimals) };
    },
  );
}
