import { Type, type TSchema } from '@sinclair/typebox';
import { DECIMAL_PATTERN, MAX_DECIMAL_LENGTH } from '../../trading/money.js';

/** TypeBox schemas shared by the market, trading, account and admin routes of the trading core. */

export const Decimal = Type.String({ pattern: DECIMAL_PATTERN, maxLength: MAX_DECIMAL_LENGTH, description: 'Decimal string, e.g. "0.0125" (never a JSON number)', examples: ['1.5'] });
export const SignedDecimal = Type.String({ description: 'Decimal string, may be negative' });
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const MarketSymbol = Type.String({ pattern: '^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$', maxLength: 21, description: 'BASE-QUOTE, e.g. MOON-USDC' });
export const AssetSymbol = Type.String({ pattern: '^[A-Z0-9]{2,10}$', maxLength: 10 });
export const Side = Type.Union([Type.Literal('buy'), Type.Literal('sell')]);
export const TimeInForce = Type.Union([Type.Literal('GTC'), Type.Literal('IOC'), Type.Literal('FOK')]);
export const Stp = Type.Union([Type.Literal('cancel_maker'), Type.Literal('cancel_taker'), Type.Literal('cancel_both')], {
  description: 'Self-trade prevention: what happens when the order would trade with your own resting order (default cancel_maker)',
});
/**
 * An order or fill id as the API hands it out (`ord_…`, `fil_….00a`). Ids go into queries as text:
 * PostgreSQL refuses a NUL byte in text, so anything beyond these characters is refused here (400)
 * instead of failing in the store (500). Unknown ids of this shape still answer 404.
 */
export const RECORD_ID_PATTERN = '^[A-Za-z0-9_.]{1,64}$';
export const RecordId = Type.String({ pattern: RECORD_ID_PATTERN, maxLength: 64 });
export const ClientOrderId = Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$', description: 'Unique per account: a retry with the same id returns the original order' });

export const Limit = (max: number, dflt: number) => Type.Integer({ minimum: 1, maximum: max, default: dflt });

export const MarketView = Type.Object({
  symbol: Type.String(),
  base: Type.String(),
  quote: Type.String(),
  baseDecimals: Type.Integer(),
  quoteDecimals: Type.Integer(),
  tickSize: Type.String(),
  lotSize: Type.String(),
  minNotional: Type.String(),
  makerFeeBps: Type.Integer(),
  takerFeeBps: Type.Integer(),
  status: Type.String(),
  lastPrice: Nullable(Type.String()),
});

export const AssetView = Type.Object({ symbol: Type.String(), name: Type.String(), decimals: Type.Integer(), faucet: Type.Boolean(), createdAt: Type.Integer() });

export const FillView = Type.Object({
  id: Type.String(),
  orderId: Type.String(),
  market: Type.String(),
  side: Type.String(),
  liquidity: Type.String(),
  price: Type.String(),
  quantity: Type.String(),
  notional: Type.String(),
  fee: Type.String(),
  feeAsset: Type.String(),
  createdAt: Type.Integer(),
});

const orderFields = {
  id: Type.String(),
  clientOrderId: Nullable(Type.String()),
  market: Type.String(),
  side: Type.String(),
  type: Type.String(),
  timeInForce: Type.String(),
  selfTradePrevention: Type.String(),
  price: Nullable(Type.String()),
  quantity: Type.String(),
  filledQuantity: Type.String(),
  remainingQuantity: Type.String(),
  averagePrice: Nullable(Type.String()),
  notional: Type.String({ description: 'Quote amount filled so far' }),
  fees: Type.String(),
  feeAsset: Type.String(),
  status: Type.String({ description: 'open | partially_filled | filled | cancelled | expired' }),
  reason: Nullable(Type.String()),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
};
export const OrderView = Type.Object(orderFields);
export const OrderWithFills = Type.Object({ ...orderFields, fills: Type.Array(FillView) });

export const PositionView = Type.Object({
  asset: Type.String(),
  quantity: Type.String(),
  available: Type.String(),
  held: Type.String(),
  costBasis: Type.String(),
  averageCost: Nullable(Type.String()),
  lastPrice: Nullable(Type.String()),
  value: Nullable(Type.String()),
  unrealizedPnl: Nullable(SignedDecimal),
  realizedPnl: SignedDecimal,
  valuationAsset: Type.String(),
});

export const LimitView = Type.Object({
  asset: Type.String(),
  limit: Type.String(),
  overridden: Type.Boolean(),
  traded24h: Type.String(),
  open: Type.String(),
  remaining: Type.String(),
  /** Most orders the account may rest per market (an admin override, else MOONDRAFT_MAX_OPEN_ORDERS). */
  maxOpenOrders: Type.Integer(),
});

/** GET|PUT /api/v1/admin/accounts/:address/open-orders-limit. */
export const OpenOrdersLimitView = Type.Object({
  maxOpenOrders: Type.Integer(),
  default: Type.Integer(),
  overridden: Type.Boolean(),
});

export const Security: { [label: string]: string[] }[] = [{ bearer: [] }, { apiKey: [] }];

export const TickerView = Type.Object({
  market: Type.String(),
  last: Nullable(Type.String()),
  open24h: Nullable(Type.String()),
  high24h: Nullable(Type.String()),
  low24h: Nullable(Type.String()),
  change24h: SignedDecimal,
  changePercent24h: Nullable(SignedDecimal),
  volume24h: Type.String(),
  quoteVolume24h: Type.String(),
  trades24h: Type.Integer(),
  bestBid: Nullable(Type.String()),
  bestAsk: Nullable(Type.String()),
});

const Level = Type.Object({ price: Type.String(), quantity: Type.String(), orders: Type.Integer() });
export const BookView = Type.Object({ market: Type.String(), seq: Type.Integer(), bids: Type.Array(Level), asks: Type.Array(Level), timestamp: Type.Integer() });
export const TradeView = Type.Object({ id: Type.String(), seq: Type.Integer(), price: Type.String(), quantity: Type.String(), side: Type.String({ description: 'The taker side' }), time: Type.Integer() });
export const CandleView = Type.Object({
  start: Type.Integer(),
  open: Type.String(),
  high: Type.String(),
  low: Type.String(),
  close: Type.String(),
  volume: Type.String(),
  quoteVolume: Type.String(),
  trades: Type.Integer(),
});
