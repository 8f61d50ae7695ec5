import { Type } from '@sinclair/typebox';
import { ApiError } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import type { App } from '../types.js';

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
}
