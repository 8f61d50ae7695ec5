import { Type } from '@sinclair/typebox';
import { canonicalWallet } from '../../accounts/wallets.js';
import { ApiError, unwrap } from '../../errors/registry.js';
import { ROLES } from '../../security/rbac/roles.js';
import type { Services } from '../../services.js';
import { clientContext, sessionPrincipal } from '../client-context.js';
import type { App } from '../types.js';
import { AccountView } from './account.js';

const AddressParams = Type.Object(
  { address: Type.String({ pattern: '^(0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32,44})$', description: 'Wallet address (0x… or Solana base58)' }) },
  { additionalProperties: false },
);
const RoleBody = Type.Object({ role: Type.Union(ROLES.map((r) => Type.Literal(r))) }, { additionalProperties: false });

/** Admin operations on accounts' identity: role, and revoking every session. */
export function adminAccountRoutes(app: App, services: Services): void {
  app.put(
    '/api/v1/admin/accounts/:address/role',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags: ['admin'],
        summary: "Set an account's role (creating the account if needed); applies to its very next request",
        security: [{ bearer: [] }],
        params: AddressParams,
        body: RoleBody,
        response: { 200: AccountView },
      },
    },
    async (request) => {
      const admin = sessionPrincipal(request);
      // Four eyes: an admin's own role is changed by another admin (or offline, by the CLI). An
      // admin demoting themselves could leave the deployment with no admin at all.
      if (canonicalWallet(request.params.address) === admin.wallet) {
        throw new ApiError('four_eyes_required', 'An admin cannot change their own role; another admin must');
      }
      const account = unwrap(await services.accounts.setRole(request.params.address, request.body.role, admin.accountId, { byAdmin: true, sessionId: admin.sessionId }));
      return { id: account.id, wallet: account.wallet, chain: account.chain, role: account.role, createdAt: account.createdAt };
    },
  );

  app.post(
    '/api/v1/admin/accounts/:address/revoke-sessions',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags: ['admin'],
        summary: 'Revoke every session of an account at once (its access and refresh tokens stop working)',
        security: [{ bearer: [] }],
        params: AddressParams,
        response: { 200: Type.Object({ revoked: Type.Integer({ description: 'Sessions revoked by this call' }) }) },
      },
    },
    async (request) => {
      const admin = sessionPrincipal(request);
      const account = await services.accounts.byWallet(request.params.address);
      if (!account) throw new ApiError('not_found', 'No account has this wallet');
      // The audit records name the admin who did it (their actor) and the session they used, not only "admin".
      // byAdmin: refused if a demotion of the caller committed since the request's role check.
      return { revoked: unwrap(await services.sessions.revokeAll(account.id, 'admin', clientContext(request), { accountId: admin.accountId, sessionId: admin.sessionId }, { byAdmin: true })) };
    },
  );
}
