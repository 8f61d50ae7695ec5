import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { ApiError, unwrap } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import type { Market } from '../../trading/assets/index.js';
import { actorOf, type Caller, type PlaceOutcome } from '../../trading/orders/types.js';
import { accountFillView, orderView, positionView, takerFillView } from '../../trading/views.js';
import type { App } from '../types.js';
import { ClientOrderId, Decimal, FillView, Limit, MarketSymbol, OrderView, OrderWithFills, PositionView, RECORD_ID_PATTERN, RecordId, Security, Side, Stp, TimeInForce } from './trading-schemas.js';
import { pageOf } from './paging.js';

/** Fills read per query when an order is answered with all of its fills. */
const ORDER_FILLS_PAGE = 1000;

/** The account, role and actor (session or API key) behind a request that passed authorize. */
export function callerOf(request: FastifyRequest): Caller {
  const p = request.principal;
  if (p.kind === 'anonymous') throw new ApiError('unauthenticated');
  return { accountId: p.accountId, role: p.role, actor: actorOf(p) };
}

const OrderBody = Type.Object(
  {
    market: Type.String({ maxLength: 32, description: 'BASE-QUOTE' }),
    side: Side,
    type: Type.Union([Type.Literal('limit'), Type.Literal('market')]),
    price: Type.Optional(Decimal),
    quantity: Decimal,
    timeInForce: Type.Optional(TimeInForce),
    clientOrderId: Type.Optional(ClientOrderId),
    selfTradePrevention: Type.Optional(Stp),
  },
  { additionalProperties: false },
);

const IdParams = Type.Object({ id: RecordId }, { additionalProperties: false });
const Before = Type.Optional(Type.String({ pattern: RECORD_ID_PATTERN, maxLength: 64, description: 'Return items older than this id' }));

/** Orders, fills and positions of the calling account. */
export function tradingRoutes(app: App, services: Services): void {
  const { trading } = services;
  const tags = ['trading'];

  // Every order view needs its market's decimals; markets are cached by the assets module.
  const marketOf = async (symbol: string): Promise<Market> => {
    const m = await trading.assets.market(symbol);
    if (!m) throw new Error(`order references unknown market ${symbol}`);
    return m;
  };
  const placed = async (outcome: PlaceOutcome) => {
    const m = await marketOf(outcome.order.market);
    return { ...orderView(m, outcome.order), fills: outcome.fills.map((f) => takerFillView(m, f)) };
  };

  app.post(
    '/api/v1/trading/orders',
    {
      config: { permission: 'orders:write' },
      schema: {
        tags,
        summary: 'Place an order (acknowledged only once committed)',
        description: 'Limit or market; GTC, IOC or FOK. 201 for a new order, 200 with Idempotent-Replayed: true when clientOrderId matches an earlier one.',
        security: Security,
        body: OrderBody,
        response: { 200: OrderWithFills, 201: OrderWithFills },
      },
    },
    async (request, reply) => {
      const outcome = unwrap(await trading.orders.place(callerOf(request), request.body));
      if (outcome.replayed) reply.header('Idempotent-Replayed', 'true');
      reply.code(outcome.replayed ? 200 : 201);
      return placed(outcome);
    },
  );

  app.get(
    '/api/v1/trading/orders',
    {
      config: { permission: 'orders:read' },
      schema: {
        tags,
        summary: 'Order history, newest first',
        security: Security,
        querystring: Type.Object(
          {
            market: Type.Optional(MarketSymbol),
            status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('closed'), Type.Literal('all')])),
            limit: Type.Optional(Limit(500, 100)),
            before: Before,
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ orders: Type.Array(OrderView), next: Type.Union([Type.String(), Type.Null()]) }) },
      },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      const limit = request.query.limit ?? 100;
      const { items: orders, more } = pageOf(await trading.queries.orders(accountId, { market: request.query.market, status: request.query.status, limit: limit + 1, before: request.query.before }), limit);
      const views = [];
      for (const o of orders) views.push(orderView(await marketOf(o.market), o));
      return { orders: views, next: more ? orders[orders.length - 1]!.id : null };
    },
  );

  app.get(
    '/api/v1/trading/orders/:id',
    { config: { permission: 'orders:read' }, schema: { tags, summary: 'One order with its fills', security: Security, params: IdParams, response: { 200: OrderWithFills } } },
    async (request) => {
      const { accountId } = callerOf(request);
      const order = await trading.queries.order(accountId, request.params.id);
      if (!order) throw new ApiError('not_found', 'No such order');
      const m = await marketOf(order.market);
      // Every fill of the order, a page at a time (one order sweeping a deep book has thousands).
      const fills: Awaited<ReturnType<typeof trading.queries.accountFills>> = [];
      for (let before: string | undefined; ; ) {
        const page = await trading.queries.accountFills(accountId, { orderId: order.id, limit: ORDER_FILLS_PAGE, ...(before ? { before } : {}) });
        fills.push(...page);
        if (page.length < ORDER_FILLS_PAGE) break;
        before = page[page.length - 1]!.fill.id;
      }
      return { ...orderView(m, order), fills: fills.reverse().map((f) => accountFillView(m, f)) };
    },
  );

  app.delete(
    '/api/v1/trading/orders/:id',
    { config: { permission: 'orders:write' }, schema: { tags, summary: 'Cancel one open order', security: Security, params: IdParams, response: { 200: OrderView } } },
    async (request) => {
      const order = unwrap(await trading.orders.cancel(callerOf(request), request.params.id));
      return orderView(await marketOf(order.market), order);
    },
  );

  app.delete(
    '/api/v1/trading/orders',
    {
      config: { permission: 'orders:write' },
      schema: {
        tags,
        summary: 'Cancel all open orders, in one market or in all',
        security: Security,
        querystring: Type.Object({ market: Type.Optional(MarketSymbol) }, { additionalProperties: false }),
        response: { 200: Type.Object({ cancelled: Type.Array(OrderView), count: Type.Integer() }) },
      },
    },
    async (request) => {
      const cancelled = unwrap(await trading.orders.cancelAll(callerOf(request), request.query.market));
      const views = [];
      for (const o of cancelled) views.push(orderView(await marketOf(o.market), o));
      return { cancelled: views, count: views.length };
    },
  );

  app.get(
    '/api/v1/trading/fills',
    {
      config: { permission: 'orders:read' },
      schema: {
        tags,
        summary: 'Fills of the account, newest first',
        security: Security,
        querystring: Type.Object(
          { market: Type.Optional(MarketSymbol), orderId: Type.Optional(RecordId), limit: Type.Optional(Limit(500, 100)), before: Before },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ fills: Type.Array(FillView), next: Type.Union([Type.String(), Type.Null()]) }) },
      },
    },
    async (request) => {
      const { accountId } = callerOf(request);
      const limit = request.query.limit ?? 100;
      const { items: fills, more } = pageOf(await trading.queries.accountFills(accountId, { market: request.query.market, orderId: request.query.orderId, limit: limit + 1, before: request.query.before }), limit);
      const views = [];
      for (const f of fills) views.push(accountFillView(await marketOf(f.fill.market), f));
      return { fills: views, next: more ? fills[fills.length - 1]!.fill.id : null };
    },
  );

  app.get(
    '/api/v1/trading/positions',
    {
      config: { permission: 'portfolio:read' },
      schema: { tags, summary: 'Holdings per asset with average cost and PnL (valued in USDC)', security: Security, response: { 200: Type.Object({ positions: Type.Array(PositionView) }) } },
    },
    async (request) => ({ positions: (await trading.portfolios.positions(callerOf(request).accountId)).map(positionView) }),
  );

  app.post(
    '/api/v1/trading/positions/:asset/close',
    {
      config: { permission: 'positions:write' },
      schema: {
        tags,
        summary: 'Close a position: sell the available balance of the asset at market',
        security: Security,
        params: Type.Object({ asset: Type.String({ pattern: '^[A-Z0-9]{2,10}$' }) }, { additionalProperties: false }),
        // Optional: no body means {}.
        body: Type.Optional(Type.Object({ clientOrderId: Type.Optional(ClientOrderId), selfTradePrevention: Type.Optional(Stp) }, { additionalProperties: false })),
        response: { 200: OrderWithFills, 201: OrderWithFills },
      },
    },
    async (request, reply) => {
      const body = request.body ?? {};
      const outcome = unwrap(
        await trading.orders.closePosition(callerOf(request), request.params.asset, {
          ...(body.clientOrderId !== undefined ? { clientOrderId: body.clientOrderId } : {}),
          ...(body.selfTradePrevention !== undefined ? { selfTradePrevention: body.selfTradePrevention } : {}),
        }),
      );
      if (outcome.replayed) reply.header('Idempotent-Replayed', 'true');
      reply.code(outcome.replayed ? 200 : 201);
      return placed(outcome);
    },
  );
}
