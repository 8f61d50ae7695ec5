import { Type } from '@sinclair/typebox';
import { adminTargetAccount, adminWriteTarget } from './admin-target.js';
import type { FastifyRequest } from 'fastify';
import { ApiError, unwrap } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import { USDC_DECIMALS } from '../../trading/assets/index.js';
import { formatAmount } from '../../trading/money.js';
import type { Actor } from '../../trading/orders/types.js';
import { STEP_UP_MAX_AGE_SEC, TIERS, WITHDRAWAL_STATUSES, withdrawalView, type Tier } from '../../trading/withdrawals/index.js';
import type { App } from '../types.js';
import { callerOf } from './trading.js';
import { AssetSymbol, ClientOrderId, Decimal, Security } from './trading-schemas.js';

export const WithdrawalView = Type.Object({
  id: Type.String(),
  asset: Type.String(),
  amount: Type.String(),
  usdcValue: Type.String({ description: 'Counted against the rolling-24 h limit' }),
  chain: Type.String(),
  address: Type.String(),
  status: Type.String({ description: 'pending | approved | sent | rejected | cancelled' }),
  txHash: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  clientWithdrawalId: Type.Union([Type.String(), Type.Null()], { description: 'The id the client gave the request, if any' }),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
});

const LimitView = Type.Object({ tier: Type.Integer(), limit: Type.String(), used: Type.String(), remaining: Type.String(), autoApproveUpTo: Type.String(), valuationAsset: Type.String() });
const AddressView = Type.Object({ id: Type.String(), chain: Type.String(), address: Type.String(), label: Type.Union([Type.String(), Type.Null()]), usableAt: Type.Integer(), createdAt: Type.Integer() });
const BookView = Type.Object({ enabled: Type.Boolean(), disablesAt: Type.Union([Type.Integer(), Type.Null()]), addresses: Type.Array(AddressView) });
const ID_PATTERN = '^[a-z]{3}_[0-9A-Z]{26}$';
const IdParams = Type.Object({ id: Type.String({ pattern: ID_PATTERN }) }, { additionalProperties: false });
/**
 * The list cursor: a withdrawal id as the list hands it out. Anything else is refused here (400):
 * it goes into the query as text, and PostgreSQL refuses a NUL byte in text (a 500 otherwise).
 */
const Before = Type.Optional(Type.String({ pattern: ID_PATTERN, maxLength: 40, description: 'Return withdrawals older than this id' }));
const StatusQuery = Type.Optional(Type.Union(WITHDRAWAL_STATUSES.map((s) => Type.Literal(s))));
const AdminSecurity = [{ bearer: [] as string[] }];

/**
 * Over a session, sensitive withdrawal operations need a sign-in within the last 5 minutes
 * (`auth_time`); API keys that may withdraw are IP-allowlisted and sign every request instead.
 */
function requireRecentSignIn(request: FastifyRequest, nowMs: number): void {
  if (signInTooOld(request, nowMs)) throw new ApiError('step_up_required', `Sign in again: this needs a sign-in within the last ${STEP_UP_MAX_AGE_SEC / 60} minutes`);
}

function signInTooOld(request: FastifyRequest, nowMs: number): boolean {
  const p = request.principal;
  return p.kind === 'session' && Math.floor(nowMs / 1000) - p.authTime > STEP_UP_MAX_AGE_SEC;
}

function adminOf(request: FastifyRequest): Actor & { accountId: string } {
  const p = request.principal;
  if (p.kind !== 'session') throw new ApiError('session_required');
  return { kind: 'admin', id: p.sessionId, accountId: p.accountId };
}

const limitView = (s: { tier: number; limit: bigint; used: bigint; remaining: bigint; autoApproveUpTo: bigint }) => ({
  tier: s.tier,
  limit: formatAmount(s.limit, USDC_DECIMALS),
  used: formatAmount(s.used, USDC_DECIMALS),
  remaining: formatAmount(s.remaining, USDC_DECIMALS),
  autoApproveUpTo: formatAmount(s.autoApproveUpTo, USDC_DECIMALS),
  valuationAsset: 'USDC',
});

/**
 * Withdrawals (issue 7): the account's own under /api/v1/account/* (the `account` rate category),
 * admin decisions and tiers under /api/v1/admin/* (signed-in admins only).
 */
export function withdrawalRoutes(app: App, services: Services): void {
  const { withdrawals, clock, accounts } = services;
  const tags = ['withdrawals'];

  app.post(
    '/api/v1/account/withdrawals',
    {
      config: { permission: 'withdrawals:write' },
      schema: {
        tags,
        summary: 'Request a withdrawal: the funds are held at once; small ones are approved and sent automatically',
        description: 'The address must suit the asset’s chain (EVM: EIP-55 checksum when mixed-case; Solana: base58 public key). Over a session, needs a sign-in within 5 minutes (step_up_required), except for a repeat of a request by its clientWithdrawalId, which is answered whatever the sign-in’s age.',
        security: Security,
        body: Type.Object(
          {
            asset: AssetSymbol,
            amount: Decimal,
            address: Type.String({ minLength: 1, maxLength: 64 }),
            clientWithdrawalId: Type.Optional(
              Type.String({
                pattern: ClientOrderId.pattern,
                description: 'Your id for this request, unique per account: a retry with it answers the original withdrawal (200, Idempotent-Replayed: true), never a second one; with another asset, amount or address, 409 conflict',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: WithdrawalView, 200: WithdrawalView },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      // A sign-in too old to start a withdrawal may still get the answer to one it started (a retry
      // with the same clientWithdrawalId whose first answer was lost): the service answers only that.
      const w = unwrap(await withdrawals.request(caller.accountId, caller.actor, request.body, { repeatOnly: signInTooOld(request, clock.now()) }));
      if (w.replayed) reply.header('Idempotent-Replayed', 'true');
      reply.code(w.replayed ? 200 : 201);
      return withdrawalView(w);
    },
  );

  app.get(
    '/api/v1/account/withdrawals',
    {
      config: { permission: 'account:read' },
      schema: {
        tags,
        summary: 'Your withdrawals, newest first',
        security: Security,
        querystring: Type.Object({ status: StatusQuery, before: Before, limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ withdrawals: Type.Array(WithdrawalView) }) },
      },
    },
    async (request) => {
      const caller = callerOf(request);
      const q = request.query;
      const list = await withdrawals.list({ accountId: caller.accountId, limit: q.limit ?? 100, ...(q.status ? { status: q.status } : {}), ...(q.before ? { before: q.before } : {}) });
      return { withdrawals: list.map(withdrawalView) };
    },
  );

  app.get(
    '/api/v1/account/withdrawals/:id',
    { config: { permission: 'account:read' }, schema: { tags, summary: 'One of your withdrawals', security: Security, params: IdParams, response: { 200: WithdrawalView } } },
    async (request) => {
      const w = await withdrawals.get(request.params.id, callerOf(request).accountId);
      if (!w) throw new ApiError('not_found', 'No such withdrawal');
      return withdrawalView(w);
    },
  );

  app.post(
    '/api/v1/account/withdrawals/:id/cancel',
    {
      config: { permission: 'withdrawals:write' },
      schema: { tags, summary: 'Cancel a pending withdrawal (its funds are released)', security: Security, params: IdParams, response: { 200: WithdrawalView } },
    },
    async (request) => {
      const caller = callerOf(request);
      return withdrawalView(unwrap(await withdrawals.cancel(caller.accountId, caller.actor, request.params.id)));
    },
  );

  app.get(
    '/api/v1/account/withdrawal-limit',
    { config: { permission: 'account:read' }, schema: { tags, summary: 'Your verification tier, its rolling-24 h limit (USDC) and what is left', security: Security, response: { 200: LimitView } } },
    async (request) => limitView(await withdrawals.limitStatus(callerOf(request).accountId, clock.now())),
  );

  // Address book --------------------------------------------------------------------------------

  const book = async (accountId: string) => {
    const s = await withdrawals.settings(accountId, services.store.db, clock.now());
    const addresses = await withdrawals.addresses(accountId);
    return { enabled: s.addressBook, disablesAt: s.addressBookOffAt, addresses };
  };

  app.get(
    '/api/v1/account/withdrawal-addresses',
    { config: { permission: 'account:read' }, schema: { tags, summary: 'Your address book: whether it is on, and the saved addresses with when each becomes usable', security: Security, response: { 200: BookView } } },
    async (request) => book(callerOf(request).accountId),
  );

  app.post(
    '/api/v1/account/withdrawal-addresses',
    {
      config: { permission: 'withdrawals:write' },
      schema: {
        tags,
        summary: 'Save an address; usable after the hold (default 24 h)',
        security: Security,
        body: Type.Object(
          { chain: Type.Union([Type.Literal('evm'), Type.Literal('solana')]), address: Type.String({ minLength: 1, maxLength: 64 }), label: Type.Optional(Type.String({ maxLength: 256, description: 'At most 64 characters after trimming' })) },
          { additionalProperties: false },
        ),
        response: { 201: AddressView },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      requireRecentSignIn(request, clock.now());
      const saved = unwrap(await withdrawals.addAddress(caller.accountId, caller.actor, request.body, clock.now()));
      reply.code(201);
      return saved;
    },
  );

  app.delete(
    '/api/v1/account/withdrawal-addresses/:id',
    { config: { permission: 'withdrawals:write' }, schema: { tags, summary: 'Remove a saved address', security: Security, params: IdParams, response: { 204: Type.Null({ description: 'Removed' }) } } },
    async (request, reply) => {
      const caller = callerOf(request);
      unwrap(await withdrawals.removeAddress(caller.accountId, caller.actor, request.params.id));
      reply.code(204);
    },
  );

  app.put(
    '/api/v1/account/withdrawal-addresses/settings',
    {
      config: { permission: 'withdrawals:write' },
      schema: {
        tags,
        summary: 'Turn the address book on (at once) or off (after the hold)',
        security: Security,
        body: Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false }),
        response: { 200: BookView },
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireRecentSignIn(request, clock.now());
      await withdrawals.setAddressBook(caller.accountId, caller.actor, request.body.enabled, clock.now());
      return book(caller.accountId);
    },
  );

  // Admin ---------------------------------------------------------------------------------------

  app.get(
    '/api/v1/admin/withdrawals',
    {
      config: { permission: 'admin:read' },
      schema: {
        tags: ['admin'],
        summary: 'Withdrawals of every account, newest first (default: the pending ones awaiting a decision)',
        security: AdminSecurity,
        querystring: Type.Object({ status: StatusQuery, before: Before, limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ withdrawals: Type.Array(Type.Object({ ...WithdrawalView.properties, accountId: Type.String() })) }) },
      },
    },
    async (request) => {
      const q = request.query;
      const list = await withdrawals.list({ status: q.status ?? 'pending', limit: q.limit ?? 100, ...(q.before ? { before: q.before } : {}) });
      return { withdrawals: list.map((w) => ({ ...withdrawalView(w), accountId: w.accountId })) };
    },
  );

  app.post(
    '/api/v1/admin/withdrawals/:id/approve',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags: ['admin'],
        summary: 'Approve a pending withdrawal and send it (or retry sending an approved one); never your own',
        security: AdminSecurity,
        params: IdParams,
        body: Type.Optional(Type.Object({}, { additionalProperties: false })),
        response: { 200: WithdrawalView },
      },
    },
    async (request) => withdrawalView(unwrap(await withdrawals.approve(adminOf(request), request.params.id))),
  );

  app.post(
    '/api/v1/admin/withdrawals/:id/reject',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags: ['admin'],
        summary: 'Reject a pending withdrawal (its funds are released); never your own',
        security: AdminSecurity,
        params: IdParams,
        body: Type.Optional(Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false })),
        response: { 200: WithdrawalView },
      },
    },
    async (request) => withdrawalView(unwrap(await withdrawals.reject(adminOf(request), request.params.id, request.body?.reason))),
  );

  const Address = Type.Object({ address: Type.String({ maxLength: 64 }) }, { additionalProperties: false });
  const accountOf = (address: string) => adminTargetAccount(accounts, address);

  app.get(
    '/api/v1/admin/accounts/:address/withdrawal-tier',
    { config: { permission: 'admin:read' }, schema: { tags: ['admin'], summary: 'An account’s verification tier and withdrawal usage', security: AdminSecurity, params: Address, response: { 200: LimitView } } },
    async (request) => limitView(await withdrawals.limitStatus((await accountOf(request.params.address)).id, clock.now())),
  );

  app.put(
    '/api/v1/admin/accounts/:address/withdrawal-tier',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags: ['admin'],
        summary: 'Set an account’s verification tier (0, 1, 2); it applies to the next withdrawal',
        security: AdminSecurity,
        params: Address,
        body: Type.Object({ tier: Type.Union(TIERS.map((t) => Type.Literal(t))) }, { additionalProperties: false }),
        response: { 200: LimitView },
      },
    },
    async (request) => {
      const admin = adminOf(request);
      // A wallet with no account gets one in the tier's transaction: a failed write leaves none.
      const target = await adminWriteTarget(accounts, request.params.address);
      // byAdmin: refused if a demotion of the caller committed since the request's role check.
      return limitView(unwrap(await withdrawals.setTier(admin, target.ref, request.body.tier as Tier, { byAdmin: true })).status);
    },
  );
}
