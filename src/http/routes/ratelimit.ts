import { Type } from '@sinclair/typebox';
import { chainOf } from '../../accounts/wallets.js';
import { ApiError, unwrap } from '../../errors/registry.js';
import type { IpBlock } from '../../security/ddos/blocks.js';
import { RATE_CATEGORIES, type LimitOverrides } from '../../security/ratelimit/policies.js';
import type { Services } from '../../services.js';
import type { App } from '../types.js';
import { pageOf } from './paging.js';

const IpBlockView = Type.Object({
  target: Type.String({ description: 'An address or a CIDR range' }),
  reason: Type.String(),
  source: Type.Union([Type.Literal('manual'), Type.Literal('auto')], { description: 'manual: an administrator; auto: the DDoS guard' }),
  createdAt: Type.Integer(),
  expiresAt: Type.Union([Type.Integer(), Type.Null()], { description: 'Epoch ms; null until removed' }),
  createdBy: Type.Union([Type.String(), Type.Null()]),
});

const PerSecond = Type.Integer({ minimum: 1, maximum: 100_000, description: 'Requests per second' });
const Limits = Type.Object({ market: PerSecond, trading: PerSecond, account: PerSecond, tokens: PerSecond });
const PerSecondOrDefault = Type.Union([PerSecond, Type.Null()], { description: 'Requests per second; null: the default' });
const LimitsBody = Type.Object(
  { market: Type.Optional(PerSecondOrDefault), trading: Type.Optional(PerSecondOrDefault), account: Type.Optional(PerSecondOrDefault), tokens: Type.Optional(PerSecondOrDefault) },
  { additionalProperties: false, description: 'Partner limits; a category left out or null uses the default. An empty object restores every default.' },
);
const LimitsView = Type.Object({
  address: Type.String(),
  accountId: Type.String(),
  overrides: Type.Object({ market: Type.Optional(PerSecond), trading: Type.Optional(PerSecond), account: Type.Optional(PerSecond), tokens: Type.Optional(PerSecond) }),
  limits: Limits,
  updatedAt: Type.Union([Type.Integer(), Type.Null()]),
  updatedBy: Type.Union([Type.String(), Type.Null()]),
});
const AddressParams = Type.Object({ address: Type.String({ maxLength: 64 }) }, { additionalProperties: false });

/** A page cursor of the block list: the last block's creation time (epoch ms) and target, `1764345600000.192.0.2.0/24`. */
const BLOCK_CURSOR_PATTERN = '^[0-9]{1,16}\\.[0-9a-f.:/]{2,43}$';
function parseBlockCursor(cursor: string): { createdAt: number; target: string } {
  const dot = cursor.indexOf('.');
  const createdAt = Number(cursor.slice(0, dot));
  // Past 2^53 a number is no longer exact (and no block is created that late): not a cursor this server gave.
  if (!Number.isSafeInteger(createdAt)) throw new ApiError('validation_failed', 'before is not a cursor this server returned');
  return { createdAt, target: cursor.slice(dot + 1) };
}
/** Newest first; blocks made in the same ms by target, descending. */
const newestFirst = (a: IpBlock, b: IpBlock) => b.createdAt - a.createdAt || (a.target < b.target ? 1 : a.target > b.target ? -1 : 0);

const view = (b: IpBlock) => ({ target: b.target, reason: b.reason, source: b.source, createdAt: b.createdAt, expiresAt: b.expiresAt, createdBy: b.createdBy });

/** Administration of rate limits and the IP block list (admin role, signed-in session only). */
export function rateLimitRoutes(app: App, services: Services): void {
  const security = [{ bearer: [] }];

  app.get(
    '/api/v1/admin/ip-blocks',
    {
      config: { permission: 'admin:read' },
      schema: {
        tags: ['admin'],
        summary: 'Blocked addresses and ranges in force (administrator and automatic blocks), newest first',
        security,
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
            before: Type.Optional(Type.String({ pattern: BLOCK_CURSOR_PATTERN, maxLength: 60, description: "The previous page's `next`: blocks after it" })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ blocks: Type.Array(IpBlockView), next: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `before` for the next page; null on the last page' }) }) },
      },
    },
    async (request) => {
      // Under a flood the DDoS guard blocks thousands of addresses: one answer holding them all
      // would grow with the flood, so the list is paged as every other is.
      const limit = request.query.limit ?? 100;
      const before = request.query.before === undefined ? undefined : parseBlockCursor(request.query.before);
      const sorted = (await services.ipBlocks.list()).sort(newestFirst);
      const after = before === undefined ? sorted : sorted.filter((b) => newestFirst(b, { ...b, createdAt: before.createdAt, target: before.target }) > 0);
      const { items, more } = pageOf(after, limit);
      const last = items[items.length - 1];
      return { blocks: items.map(view), next: more && last ? `${last.createdAt}.${last.target}` : null };
    },
  );

  app.post(
    '/api/v1/admin/ip-blocks',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags: ['admin'],
        summary: 'Block an address or range on every server process (403 ip_blocked before any other work)',
        security,
        body: Type.Object(
          {
            target: Type.String({ maxLength: 64, description: 'IPv4/IPv6 address or CIDR range (at least /8 for IPv4, /16 for IPv6)' }),
            reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            durationSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 * 86_400, description: 'Omit for a block that lasts until removed' })),
          },
          { additionalProperties: false },
        ),
        response: { 201: IpBlockView },
      },
    },
    async (request, reply) => {
      const p = request.principal;
      if (p.kind === 'anonymous') throw new ApiError('unauthenticated');
      const { target, reason, durationSec } = request.body;
      const block = unwrap(await services.ipBlocks.add(target, { reason: reason ?? 'blocked by an administrator', ttlMs: durationSec === undefined ? undefined : durationSec * 1000, by: p.accountId, sessionId: p.kind === 'session' ? p.sessionId : undefined, callerIp: request.clientIp, byAdmin: true }));
      reply.code(201);
      return view(block);
    },
  );

  app.delete(
    '/api/v1/admin/ip-blocks',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags: ['admin'],
        summary: 'Lift a block (administrator or automatic) on every server process',
        security,
        querystring: Type.Object({ target: Type.String({ maxLength: 64, description: 'The blocked address or range, as listed' }) }, { additionalProperties: false }),
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const p = request.principal;
      if (p.kind === 'anonymous') throw new ApiError('unauthenticated');
      const removed = unwrap(await services.ipBlocks.remove(request.query.target, p.accountId, p.kind === 'session' ? p.sessionId : undefined, { byAdmin: true }));
      if (!removed) throw new ApiError('not_found', 'No block on that address or range');
      reply.code(204);
    },
  );

  async function accountOf(address: string) {
    if (!chainOf(address)) throw new ApiError('validation_failed', 'address must be an Ethereum (0x…) or Solana (base58) wallet address');
    const account = await services.accounts.byWallet(address);
    if (!account) throw new ApiError('not_found', 'No account for that wallet');
    return account;
  }

  app.get(
    '/api/v1/admin/accounts/:address/limits',
    {
      config: { permission: 'admin:read' },
      schema: { tags: ['admin'], summary: 'Rate limits in force for an account (partner overrides and defaults)', security, params: AddressParams, response: { 200: LimitsView } },
    },
    async (request) => {
      const account = await accountOf(request.params.address);
      const record = await services.partnerLimits.read(account.id);
      const limits = await services.partnerLimits.limitsFor(account.id);
      return { address: account.wallet, accountId: account.id, overrides: record?.overrides ?? {}, limits, updatedAt: record?.updatedAt ?? null, updatedBy: record?.updatedBy ?? null };
    },
  );

  app.put(
    '/api/v1/admin/accounts/:address/limits',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags: ['admin'],
        summary: 'Set partner rate limits for an account (all its keys and sessions); every process applies them at once',
        security,
        params: AddressParams,
        body: LimitsBody,
        response: { 200: LimitsView },
      },
    },
    async (request) => {
      const p = request.principal;
      if (p.kind === 'anonymous') throw new ApiError('unauthenticated');
      const account = await accountOf(request.params.address);
      // Four eyes, as for the daily trading limit: partner limits raise what the account's keys and
      // sessions may send, so an admin's own are set by another admin.
      if (account.id === p.accountId) throw new ApiError('four_eyes_required', 'An admin cannot set their own rate limits; another admin must');
      const overrides: LimitOverrides = {};
      for (const c of RATE_CATEGORIES) {
        const value = request.body[c];
        if (value !== undefined && value !== null) overrides[c] = value;
      }
      // By an admin: refused if a demotion of the caller committed since the request's role check.
      const record = unwrap(await services.partnerLimits.setByAdmin(account.id, overrides, p.accountId, p.kind === 'session' ? p.sessionId : undefined));
      services.events.emit({ type: 'ratelimit.limits_changed', at: services.clock.now(), accountId: account.id, limits: record.overrides, by: p.accountId, requestId: request.id, ip: request.clientIp, audited: true });
      return { address: account.wallet, ...record };
    },
  );
}
