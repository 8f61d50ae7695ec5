import { Type } from '@sinclair/typebox';
import { adminTargetAccount, adminWriteTarget } from './admin-target.js';
import type { FastifyRequest } from 'fastify';
import { lockStillAdmin, NO_LONGER_ADMIN } from '../../accounts/accounts.js';
import { ApiError, fail, unwrap } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import type { Asset, Market } from '../../trading/assets/index.js';
import type { Actor } from '../../trading/orders/types.js';
import { MAX_OPEN_ORDERS_BOUNDS, parseDailyNotional } from '../../trading/limits.js';
import { formatAmount } from '../../trading/money.js';
import { assetView, limitView, marketView } from '../../trading/views.js';
import type { App } from '../types.js';
import { AssetSymbol, AssetView, Decimal, LimitView, MarketSymbol, MarketView, OpenOrdersLimitView } from './trading-schemas.js';

const Address = Type.Object({ address: Type.String({ maxLength: 64 }) }, { additionalProperties: false });
const AdminSecurity = [{ bearer: [] as string[] }];

function adminActor(request: FastifyRequest): Actor {
  const p = request.principal;
  if (p.kind !== 'session') throw new ApiError('session_required');
  return { kind: 'admin', id: p.sessionId, accountId: p.accountId };
}

/**
 * Admin controls of the trading core: create assets, list and delist markets, and override an
 * account's daily trading limit and its open-orders cap. Session-only (`admin:write` / `admin:read`
 * have no API-key scope). Each change is audited in its own transaction (admin.asset.created,
 * admin.market.listed, admin.market.delisted, admin.trading_limit.changed,
 * admin.open_orders_limit.changed).
 */
export function tradingAdminRoutes(app: App, services: Services): void {
  const { trading, accounts, audit, store } = services;
  const tags = ['admin'];

  const accountOf = (address: string) => adminTargetAccount(accounts, address);

  app.post(
    '/api/v1/admin/assets',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags,
        summary: 'Create an asset',
        security: AdminSecurity,
        body: Type.Object(
          { symbol: AssetSymbol, name: Type.String({ minLength: 1, maxLength: 64 }), decimals: Type.Integer({ minimum: 0, maximum: 18 }), faucet: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: { 201: AssetView },
      },
    },
    async (request, reply) => {
      const actor = adminActor(request);
      const by = actor.accountId ?? actor.id;
      // The asset and its audit record commit together (a refusal writes neither).
      const asset = unwrap(
        await trading.ledger.run<Asset, 'validation_failed' | 'conflict' | 'forbidden_role'>(async (_l, trx) => {
          // The caller must still be an admin as committed: a demotion committed after the request's
          // role check refuses the asset.
          if (!(await lockStillAdmin(store, trx, by))) return fail('forbidden_role', NO_LONGER_ADMIN);
          const created = await trading.assets.createAsset(request.body, by, trx);
          if (!created.ok) return created;
          const a = created.value;
          await audit.recordIn(trx, { type: 'admin.asset.created', actorId: by, details: { symbol: a.symbol, name: a.name, decimals: a.decimals, faucet: a.faucet, via: 'session', sessionId: actor.id } });
          return created;
        }),
      );
      reply.code(201);
      return assetView(asset);
    },
  );

  app.post(
    '/api/v1/admin/markets',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags,
        summary: 'List (or relist) a market BASE-USDC',
        description: 'tickSize × lotSize must settle in whole quote minor units; the error says which lot to use.',
        security: AdminSecurity,
        body: Type.Object(
          {
            base: AssetSymbol,
            quote: AssetSymbol,
            tickSize: Decimal,
            lotSize: Decimal,
            minNotional: Decimal,
            makerFeeBps: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
            takerFeeBps: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: MarketView },
      },
    },
    async (request, reply) => {
      const actor = adminActor(request);
      const by = actor.accountId ?? actor.id;
      // The listing and its audit record commit together (a refusal writes neither).
      const market = unwrap(
        await trading.ledger.run<Market, 'validation_failed' | 'conflict' | 'forbidden_role'>(async (_l, trx) => {
          // The caller must still be an admin as committed: a demotion committed after the request's
          // role check refuses the listing (a delisted market stays delisted).
          if (!(await lockStillAdmin(store, trx, by))) return fail('forbidden_role', NO_LONGER_ADMIN);
          const relisted = (await trx.selectFrom('markets').select('status').where('symbol', '=', `${request.body.base}-${request.body.quote}`).executeTakeFirst()) !== undefined;
          const listed = await trading.assets.listMarket(request.body, trx);
          if (!listed.ok) return listed;
          const m = listed.value;
          await audit.recordIn(trx, {
            type: 'admin.market.listed',
            actorId: by,
            details: {
              market: m.symbol,
              tickSize: formatAmount(m.tickSize, m.quoteDecimals),
              lotSize: formatAmount(m.lotSize, m.baseDecimals),
              minNotional: formatAmount(m.minNotional, m.quoteDecimals),
              makerFeeBps: m.makerFeeBps,
              takerFeeBps: m.takerFeeBps,
              relisted,
              via: 'session',
              sessionId: actor.id,
            },
          });
          return listed;
        }),
      );
      trading.assets.remember(market);
      await trading.orders.warm(market.symbol);
      reply.code(201);
      return marketView(market);
    },
  );

  app.delete(
    '/api/v1/admin/markets/:market',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags,
        summary: 'Delist a market: cancel every resting order (releasing its funds) and stop trading',
        security: AdminSecurity,
        params: Type.Object({ market: MarketSymbol }, { additionalProperties: false }),
        response: { 200: Type.Object({ market: Type.String(), cancelled: Type.Integer() }) },
      },
    },
    async (request) => unwrap(await trading.orders.delist(adminActor(request), request.params.market)),
  );

  app.get(
    '/api/v1/admin/accounts/:address/trading-limit',
    { config: { permission: 'admin:read' }, schema: { tags, summary: 'An account’s daily trading limit and usage', security: AdminSecurity, params: Address, response: { 200: LimitView } } },
    async (request) => {
      const account = await accountOf(request.params.address);
      return limitView(await trading.limits.status(account.id, account.role));
    },
  );

  app.put(
    '/api/v1/admin/accounts/:address/trading-limit',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags,
        summary: 'Override an account’s daily trading limit (USDC over a rolling 24 h); null restores the role default',
        security: AdminSecurity,
        params: Address,
        body: Type.Object({ dailyNotional: Type.Union([Decimal, Type.Null()]) }, { additionalProperties: false }),
        response: { 200: LimitView },
      },
    },
    async (request) => {
      const actor = adminActor(request);
      // Refuse a bad value before anything is written: a refusal changes nothing.
      unwrap(parseDailyNotional(request.body.dailyNotional));
      // A wallet with no account gets one in the override's transaction: a failed write leaves none.
      const target = await adminWriteTarget(accounts, request.params.address);
      // Four eyes, as for roles and withdrawal tiers: the daily limit is a risk control on the
      // admin's own trading too, so another admin sets it.
      if (target.existing?.id === actor.accountId) throw new ApiError('four_eyes_required', 'An admin cannot override their own daily trading limit; another admin must');
      // byAdmin: refused if a demotion of the caller committed since the request's role check.
      return limitView(unwrap(await trading.limits.setOverride(target.ref, request.body.dailyNotional, actor.accountId ?? actor.id, actor.id, { byAdmin: true })).status);
    },
  );

  app.get(
    '/api/v1/admin/accounts/:address/open-orders-limit',
    {
      config: { permission: 'admin:read' },
      schema: { tags, summary: 'An account’s cap on orders resting per market: the one in effect, the default, and whether it is overridden', security: AdminSecurity, params: Address, response: { 200: OpenOrdersLimitView } },
    },
    async (request) => {
      const account = await accountOf(request.params.address);
      return trading.limits.openOrdersStatus(account.id);
    },
  );

  app.put(
    '/api/v1/admin/accounts/:address/open-orders-limit',
    {
      config: { permission: 'admin:write' },
      schema: {
        tags,
        summary: 'Override an account’s cap on orders resting per market; null restores MOONDRAFT_MAX_OPEN_ORDERS',
        description: 'A cap lowered below what the account already rests leaves those orders resting; only new resting orders are refused.',
        security: AdminSecurity,
        params: Address,
        body: Type.Object({ maxOpenOrders: Type.Union([Type.Integer({ minimum: MAX_OPEN_ORDERS_BOUNDS.min, maximum: MAX_OPEN_ORDERS_BOUNDS.max }), Type.Null()]) }, { additionalProperties: false }),
        response: { 200: OpenOrdersLimitView },
      },
    },
    async (request) => {
      const actor = adminActor(request);
      // A wallet with no account gets one in the override's transaction: a failed write leaves none.
      const target = await adminWriteTarget(accounts, request.params.address);
      // Four eyes, as for the daily limit: the cap is a risk control on the admin's own trading too.
      if (target.existing?.id === actor.accountId) throw new ApiError('four_eyes_required', 'An admin cannot override their own open-orders limit; another admin must');
      return unwrap(await trading.limits.setOpenOrdersOverride(target.ref, request.body.maxOpenOrders, actor.accountId ?? actor.id, actor.id, { byAdmin: true })).status;
    },
  );
}
