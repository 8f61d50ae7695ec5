import { Type } from '@sinclair/typebox';
import { ApiError } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import type { App } from '../types.js';
import { formatAmount } from '../../trading/money.js';
import { limitView, portfolioView } from '../../trading/views.js';
import { LimitView, PositionView, Security } from './trading-schemas.js';

export const AccountView = Type.Object({
  id: Type.String(),
  wallet: Type.String(),
  chain: Type.String(),
  role: Type.String(),
  createdAt: Type.Integer(),
});

/** The caller's own account. */
export function accountRoutes(app: App, services: Services): void {
  app.get(
    '/api/v1/account',
    { config: { permission: 'account:read' }, schema: { tags: ['account'], summary: 'The calling account', security: [{ bearer: [] }, { apiKey: [] }], response: { 200: AccountView } } },
    async (request) => {
      const principal = request.principal;
      if (principal.kind === 'anonymous') throw new ApiError('unauthenticated');
      const account = await services.accounts.identity(principal.accountId);
      if (!account) throw new ApiError('not_found', 'Account not found');
      // The role in force (it may have changed since the token was issued).
      return { id: account.id, wallet: account.wallet, chain: account.chain, role: principal.role, createdAt: account.createdAt };
    },
  );

  app.get(
    '/api/v1/account/balances',
    {
      config: { permission: 'account:read' },
      schema: {
        tags: ['account'],
        summary: 'Balances per asset: available and held (reserved for open orders and pending withdrawals)',
        security: Security,
        response: { 200: Type.Object({ balances: Type.Array(Type.Object({ asset: Type.String(), available: Type.String(), held: Type.String(), total: Type.String() })) }) },
      },
    },
    async (request) => {
      const principal = request.principal;
      if (principal.kind === 'anonymous') throw new ApiError('unauthenticated');
      const rows = await services.trading.ledger.balances(principal.accountId);
      const balances = [];
      for (const b of rows) {
        const decimals = (await services.trading.assets.asset(b.asset))?.decimals ?? 0;
        balances.push({ asset: b.asset, available: formatAmount(b.available, decimals), held: formatAmount(b.held, decimals), total: formatAmount(b.available + b.held, decimals) });
      }
      return { balances };
    },
  );

  app.get(
    '/api/v1/account/portfolio',
    {
      config: { permission: 'portfolio:read' },
      schema: {
        tags: ['account'],
        summary: 'Total value in USDC at last prices, with positions and PnL',
        security: Security,
        response: {
          200: Type.Object({
            valuationAsset: Type.String(),
            cash: Type.String(),
            positionsValue: Type.String(),
            totalValue: Type.String(),
            realizedPnl: Type.String(),
            unrealizedPnl: Type.String(),
            unpriced: Type.Array(Type.String()),
            positions: Type.Array(PositionView),
          }),
        },
      },
    },
    async (request) => {
      const principal = request.principal;
      if (principal.kind === 'anonymous') throw new ApiError('unauthenticated');
      return portfolioView(await services.trading.portfolios.portfolio(principal.accountId));
    },
  );

  app.get(
    '/api/v1/account/trading-limit',
    { config: { permission: 'account:read' }, schema: { tags: ['account'], summary: 'The daily trading limit (rolling 24 h, USDC) and what is left of it', security: Security, response: { 200: LimitView } } },
    async (request) => {
      const principal = request.principal;
      if (principal.kind === 'anonymous') throw new ApiError('unauthenticated');
      return limitView(await services.trading.limits.status(principal.accountId, principal.role));
    },
  );
}
