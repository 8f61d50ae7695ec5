import { Type } from '@sinclair/typebox';
import { ApiError } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import { PERIOD_NAMES, type CandlePeriod } from '../../trading/marketdata/index.js';
import { assetView, bookView, candleView, marketView, tickerView, tradeView } from '../../trading/views.js';
import type { App } from '../types.js';
import { AssetView, BookView, CandleView, Limit, MarketSymbol, MarketView, Security, TickerView, TradeView } from './trading-schemas.js';

const MarketParams = Type.Object({ market: MarketSymbol }, { additionalProperties: false });

/** Public market data (`market:read`): markets, assets, tickers, order book depth, trades, candles. */
export function marketRoutes(app: App, services: Services): void {
  const { trading } = services;
  const config = { permission: 'market:read' as const };
  const tags = ['market'];

  const marketOr404 = async (symbol: string) => {
    const market = await trading.assets.market(symbol);
    if (!market) throw new ApiError('not_found', 'No such market');
    return market;
  };

  app.get(
    '/api/v1/market/markets',
    { config, schema: { tags, summary: 'Listed markets with their tick, lot and minimum order', security: Security, response: { 200: Type.Object({ markets: Type.Array(MarketView) }) } } },
    async () => ({ markets: (await trading.assets.listMarkets()).map(marketView) }),
  );

  app.get(
    '/api/v1/market/assets',
    { config, schema: { tags, summary: 'Assets and their decimals', security: Security, response: { 200: Type.Object({ assets: Type.Array(AssetView) }) } } },
    async () => ({ assets: (await trading.assets.listAssets()).map(assetView) }),
  );

  app.get(
    '/api/v1/market/tickers',
    { config, schema: { tags, summary: 'Last price, 24 h change and volume, best bid and ask of every market', security: Security, response: { 200: Type.Object({ tickers: Type.Array(TickerView) }) } } },
    async () => ({ tickers: (await trading.marketData.tickers()).map(tickerView) }),
  );

  app.get(
    '/api/v1/market/orderbook/:market',
    {
      config,
      schema: {
        tags,
        summary: 'Aggregated order book depth (price levels, best first)',
        security: Security,
        params: MarketParams,
        querystring: Type.Object({ depth: Type.Optional(Limit(100, 20)) }, { additionalProperties: false }),
        response: { 200: BookView },
      },
    },
    async (request) => {
      const market = await marketOr404(request.params.market);
      const snap = await trading.orders.snapshot(market.symbol);
      if (!snap) throw new ApiError('not_found', 'No such market');
      return bookView(market, snap, request.query.depth ?? 20);
    },
  );

  app.get(
    '/api/v1/market/trades/:market',
    {
      config,
      schema: {
        tags,
        summary: 'Recent trades, newest first',
        security: Security,
        params: MarketParams,
        querystring: Type.Object({ limit: Type.Optional(Limit(500, 50)) }, { additionalProperties: false }),
        response: { 200: Type.Object({ market: Type.String(), trades: Type.Array(TradeView) }) },
      },
    },
    async (request) => {
      const market = await marketOr404(request.params.market);
      const trades = await trading.queries.trades(market.symbol, request.query.limit ?? 50);
      return { market: market.symbol, trades: trades.map((t) => tradeView(market, t)) };
    },
  );

  app.get(
    '/api/v1/market/candles/:market',
    {
      config,
      schema: {
        tags,
        summary: 'OHLCV candles built from fills',
        security: Security,
        params: MarketParams,
        querystring: Type.Object(
          {
            interval: Type.Optional(Type.Union(PERIOD_NAMES.map((p) => Type.Literal(p)))),
            // Bounded: a bigint column compared with a number beyond 2^63 is a store error on PostgreSQL.
            from: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'epoch ms' })),
            to: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'epoch ms' })),
            limit: Type.Optional(Limit(1000, 500)),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ market: Type.String(), interval: Type.String(), candles: Type.Array(CandleView) }) },
      },
    },
    async (request) => {
      const market = await marketOr404(request.params.market);
      const { from, to } = request.query;
      if (from !== undefined && to !== undefined && from > to) throw new ApiError('validation_failed', 'from must not be after to');
      const interval = (request.query.interval ?? '1m') as CandlePeriod;
      const candles = await trading.marketData.candles(market.symbol, interval, { from, to, limit: request.query.limit ?? 500 });
      return { market: market.symbol, interval, candles: candles.map((c) => candleView(market, c)) };
    },
  );
}
