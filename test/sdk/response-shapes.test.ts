/**
 * The SDK's market, trading, account, withdrawal and token methods against a real server: each result
 * has exactly the fields its declared type names (no more, none missing), each of the kind declared
 * (decimal strings, integers and epoch ms, nulls only where the type allows them). Lists come back as
 * arrays (the server's `{ markets }`, `{ tickers }`, … envelopes unwrapped), paged lists as the
 * server's `{ orders, next }` / `{ fills, next }`, and the query parameters the SDK declares are the
 * ones the server accepts.
 */
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MoondraftClient,
  type Balance,
  type CancelAllResult,
  type Candle,
  type Fill,
  type FillsPage,
  type LaunchedToken,
  type Market,
  type Order,
  type OrderBook,
  type OrdersPage,
  type OrderWithFills,
  type Portfolio,
  type Position,
  type PriceLevel,
  type PublicTrade,
  type Ticker,
  type Token,
  type Withdrawal,
} from '@moondraft/client';
import { raiseLimits, sdkBackends, startRealServer, type RealServer } from './support.js';

const backends = await sdkBackends();

/**
 * What each field of `T` must be at runtime. The compiler holds the spec to the type: every declared
 * field is listed, no other, and a field's kind fits its declared type (a nullable field cannot be
 * checked as non-null, a number as a string, …).
 */
type KindOf<V> = [V] extends [string]
  ? 'string' | 'decimal'
  : [V] extends [string | null]
    ? 'string?' | 'decimal?'
    : [V] extends [number]
      ? 'int'
      : [V] extends [boolean]
        ? 'bool'
        : [V] extends [unknown[]]
          ? 'array'
          : 'object';
type Spec<T> = { [K in keyof T]-?: KindOf<T[K]> };

const DECIMAL = /^-?\d+(\.\d+)?$/;
const fitsKind = (kind: string, v: unknown): boolean => {
  switch (kind) {
    case 'string':
      return typeof v === 'string';
    case 'decimal':
      return typeof v === 'string' && DECIMAL.test(v);
    case 'string?':
      return v === null || typeof v === 'string';
    case 'decimal?':
      return v === null || (typeof v === 'string' && DECIMAL.test(v));
    case 'int':
      return Number.isSafeInteger(v);
    case 'bool':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    default:
      return typeof v === 'object' && v !== null && !Array.isArray(v);
  }
};

/**
 * Checks that `value` has exactly the fields of `spec`, each of its kind. `T` is inferred from the
 * value, i.e. from the SDK method's declared return type: the spec is held to that.
 */
function expectShape<T>(label: string, value: T, spec: Spec<NoInfer<T>>): T {
  const shown = JSON.stringify(value)?.slice(0, 300);
  expect(typeof value === 'object' && value !== null && !Array.isArray(value), `${label} is an object: ${shown}`).toBe(true);
  // Like `declaredFields`, the spec's keys are the type's fields, held to the type by the compiler.
  expect(Object.keys(value as object).sort(), `${label} fields: ${shown}`).toEqual(Object.keys(spec).sort());
  for (const [field, kind] of Object.entries(spec) as Array<[string, string]>) {
    const v = (value as Record<string, unknown>)[field];
    expect(fitsKind(kind, v), `${label}.${field} should be ${kind}, is ${JSON.stringify(v)}`).toBe(true);
  }
  return value as T;
}

/** Checks that `value` is a non-empty array whose every item has the shape. */
function expectList<T>(label: string, value: readonly T[], spec: Spec<NoInfer<T>>): readonly T[] {
  expect(Array.isArray(value), `${label} is an array: ${JSON.stringify(value)?.slice(0, 300)}`).toBe(true);
  const list = value as unknown[];
  expect(list.length, `${label} has items`).toBeGreaterThan(0);
  list.forEach((item, i) => expectShape(`${label}[${i}]`, item as T, spec));
  return value;
}

const MARKET: Spec<Market> = {
  symbol: 'string',
  base: 'string',
  quote: 'string',
  baseDecimals: 'int',
  quoteDecimals: 'int',
  tickSize: 'decimal',
  lotSize: 'decimal',
  minNotional: 'decimal',
  makerFeeBps: 'int',
  takerFeeBps: 'int',
  status: 'string',
  lastPrice: 'decimal?',
};
const TICKER: Spec<Ticker> = {
  market: 'string',
  last: 'decimal?',
  open24h: 'decimal?',
  high24h: 'decimal?',
  low24h: 'decimal?',
  change24h: 'decimal',
  changePercent24h: 'decimal?',
  volume24h: 'decimal',
  quoteVolume24h: 'decimal',
  trades24h: 'int',
  bestBid: 'decimal?',
  bestAsk: 'decimal?',
};
const LEVEL: Spec<PriceLevel> = { price: 'decimal', quantity: 'decimal', orders: 'int' };
const BOOK: Spec<OrderBook> = { market: 'string', seq: 'int', bids: 'array', asks: 'array', timestamp: 'int' };
const TRADE: Spec<PublicTrade> = { id: 'string', seq: 'int', price: 'decimal', quantity: 'decimal', side: 'string', time: 'int' };
const CANDLE: Spec<Candle> = { start: 'int', open: 'decimal', high: 'decimal', low: 'decimal', close: 'decimal', volume: 'decimal', quoteVolume: 'decimal', trades: 'int' };
const ORDER: Spec<Order> = {
  id: 'string',
  clientOrderId: 'string?',
  market: 'string',
  side: 'string',
  type: 'string',
  timeInForce: 'string',
  selfTradePrevention: 'string',
  price: 'decimal?',
  quantity: 'decimal',
  filledQuantity: 'decimal',
  remainingQuantity: 'decimal',
  averagePrice: 'decimal?',
  notional: 'decimal',
  fees: 'decimal',
  feeAsset: 'string',
  status: 'string',
  reason: 'string?',
  createdAt: 'int',
  updatedAt: 'int',
};
const ORDER_WITH_FILLS: Spec<OrderWithFills> = { ...ORDER, fills: 'array' };
const FILL: Spec<Fill> = {
  id: 'string',
  orderId: 'string',
  market: 'string',
  side: 'string',
  liquidity: 'string',
  price: 'decimal',
  quantity: 'decimal',
  notional: 'decimal',
  fee: 'decimal',
  feeAsset: 'string',
  createdAt: 'int',
};
const ORDERS_PAGE: Spec<OrdersPage> = { orders: 'array', next: 'string?' };
const FILLS_PAGE: Spec<FillsPage> = { fills: 'array', next: 'string?' };
const CANCEL_ALL: Spec<CancelAllResult> = { cancelled: 'array', count: 'int' };
const POSITION: Spec<Position> = {
  asset: 'string',
  quantity: 'decimal',
  available: 'decimal',
  held: 'decimal',
  costBasis: 'decimal',
  averageCost: 'decimal?',
  lastPrice: 'decimal?',
  value: 'decimal?',
  unrealizedPnl: 'decimal?',
  realizedPnl: 'decimal',
  valuationAsset: 'string',
};
const BALANCE: Spec<Balance> = { asset: 'string', available: 'decimal', held: 'decimal', total: 'decimal' };
const PORTFOLIO: Spec<Portfolio> = {
  valuationAsset: 'string',
  cash: 'decimal',
  positionsValue: 'decimal',
  totalValue: 'decimal',
  realizedPnl: 'decimal',
  unrealizedPnl: 'decimal',
  unpriced: 'array',
  positions: 'array',
};
const WITHDRAWAL: Spec<Withdrawal> = {
  id: 'string',
  asset: 'string',
  amount: 'decimal',
  usdcValue: 'decimal',
  chain: 'string',
  address: 'string',
  status: 'string',
  txHash: 'string?',
  reason: 'string?',
  createdAt: 'int',
  updatedAt: 'int',
};
const TOKEN: Spec<Token> = {
  symbol: 'string',
  name: 'string',
  decimals: 'int',
  chain: 'string',
  supply: 'decimal',
  description: 'string?',
  website: 'string?',
  imageUrl: 'string?',
  market: 'string',
  createdAt: 'int',
  updatedAt: 'int',
};
const LAUNCHED: Spec<LaunchedToken> = { token: 'object', market: 'object' };

describe.each(backends)('SDK response shapes against a real server (%s)', (backend) => {
  let server: RealServer;
  let alice: MoondraftClient;
  let bob: MoondraftClient;
  let launched: Awaited<ReturnType<MoondraftClient['tokens']['create']>>;
  let symbol: string;
  let market: string;
  /** Bob's buy that traded with Alice's resting sell. */
  let taken: Awaited<ReturnType<MoondraftClient['trading']['placeOrder']>>;

  async function signedIn(): Promise<MoondraftClient> {
    const client = new MoondraftClient({ baseUrl: server.url, env: false });
    await client.signIn(privateKeyToAccount(generatePrivateKey()));
    await raiseLimits(server, (await client.account.get()).id);
    return client;
  }

  beforeAll(async () => {
    server = await startRealServer({ backend });
    [alice, bob] = [await signedIn(), await signedIn()];
    symbol = `SHP${Math.floor(Math.random() * 9000 + 1000)}`;
    launched = await alice.tokens.create({ name: 'Shape Check', symbol, decimals: 6, supply: '1000000' });
    market = `${symbol}-USDC`;
    await alice.sandbox.faucet({ asset: 'USDC', amount: '1000' });
    await bob.sandbox.faucet({ asset: 'USDC', amount: '1000' });
    await alice.trading.placeOrder({ market, side: 'sell', type: 'limit', price: '0.5', quantity: '100' });
    taken = await bob.trading.placeOrder({ market, side: 'buy', type: 'limit', price: '0.5', quantity: '40' });
    // A resting bid under the ask, so that the book has both sides.
    await bob.trading.placeOrder({ market, side: 'buy', type: 'limit', price: '0.25', quantity: '10' });
  });
  afterAll(async () => {
    alice?.close();
    bob?.close();
    await server?.close();
  });

  describe('market', () => {
    it('markets() returns the list of markets', async () => {
      const markets = expectList('markets', await bob.market.markets(), MARKET);
      expect(markets.map((m) => m.symbol)).toContain(market);
    });

    it('tickers() returns the list of tickers', async () => {
      const tickers = expectList('tickers', await bob.market.tickers(), TICKER);
      expect(tickers.find((t) => t.market === market)).toMatchObject({ last: '0.5', bestAsk: '0.5', bestBid: '0.25', trades24h: 1 });
    });

    it('orderBook() levels are { price, quantity, orders } objects', async () => {
      const book = expectShape('orderBook', await bob.market.orderBook(market, { depth: 5 }), BOOK);
      expectList('orderBook.bids', book.bids, LEVEL);
      expectList('orderBook.asks', book.asks, LEVEL);
      expect(book.asks[0]).toMatchObject({ price: '0.5', orders: 1 });
    });

    it('trades() returns the list of trades', async () => {
      const trades = expectList('trades', await bob.market.trades(market, { limit: 10 }), TRADE);
      expect(trades[0]).toMatchObject({ price: '0.5', side: 'buy' });
    });

    it('candles() returns the list of candles, with or without an interval', async () => {
      const candles = expectList('candles', await bob.market.candles(market, { interval: '1m', limit: 10 }), CANDLE);
      expect(candles[0]).toMatchObject({ open: '0.5', close: '0.5', trades: 1 });
      expectList('candles (default interval)', await bob.market.candles(market), CANDLE);
      const now = await bob.system.time();
      expectList('candles (from, to)', await bob.market.candles(market, { interval: '1d', from: 0, to: now.serverTime }), CANDLE);
    });
  });

  describe('trading', () => {
    it('placeOrder() answers the order with its fills', () => {
      expectShape('placeOrder', taken, ORDER_WITH_FILLS);
      expect(taken.status).toBe('filled');
      expectList('placeOrder.fills', taken.fills, FILL);
    });

    it('order() answers the order with its fills', async () => {
      const order = expectShape('order', await bob.trading.order(taken.id), ORDER_WITH_FILLS);
      expectList('order.fills', order.fills, FILL);
    });

    it('orders() answers a page { orders, next } that pages with before = next', async () => {
      const page = expectShape('orders', await bob.trading.orders(), ORDERS_PAGE);
      expectList('orders.orders', page.orders, ORDER);
      expect(page.next).toBeNull();

      const first = expectShape('orders page 1', await bob.trading.orders({ market, limit: 1 }), ORDERS_PAGE);
      expect(first.orders).toHaveLength(1);
      expect(typeof first.next).toBe('string');
      const second = expectShape('orders page 2', await bob.trading.orders({ market, limit: 1, before: first.next! }), ORDERS_PAGE);
      expect(second.orders).toHaveLength(1);
      expect(second.orders[0]!.id).not.toBe(first.orders[0]!.id);
    });

    it('orders({ status }) takes the filters the server knows: open, closed, all', async () => {
      expect((await bob.trading.orders({ status: 'open' })).orders.map((o) => o.status)).toEqual(['open']);
      expect((await bob.trading.orders({ status: 'closed' })).orders.map((o) => o.status)).toEqual(['filled']);
      expect((await bob.trading.orders({ status: 'all' })).orders).toHaveLength(2);
    });

    it('fills() answers a page { fills, next } that pages with before = next', async () => {
      const page = expectShape('fills', await alice.trading.fills({ market }), FILLS_PAGE);
      expectList('fills.fills', page.fills, FILL);
      expect(page.next).toBeNull();
      const mine = await bob.trading.fills({ orderId: taken.id, limit: 1 });
      expect(mine.fills).toHaveLength(1);
      expect(mine.next).toBe(mine.fills[0]!.id);
      expect((await bob.trading.fills({ before: mine.next! })).fills).toEqual([]);
    });

    it('positions() returns the list of positions', async () => {
      const positions = expectList('positions', await bob.trading.positions(), POSITION);
      expect(positions.find((p) => p.asset === symbol)).toMatchObject({ quantity: '40', valuationAsset: 'USDC' });
    });

    it('cancelOrder() answers the cancelled order', async () => {
      const resting = await alice.trading.placeOrder({ market, side: 'sell', type: 'limit', price: '0.9', quantity: '5' });
      const cancelled = expectShape('cancelOrder', await alice.trading.cancelOrder(resting.id), ORDER);
      expect(cancelled.status).toBe('cancelled');
    });

    it('cancelAllOrders() answers { cancelled: Order[], count }', async () => {
      const result = expectShape('cancelAllOrders', await alice.trading.cancelAllOrders(market), CANCEL_ALL);
      expectList('cancelAllOrders.cancelled', result.cancelled, ORDER);
      expect(result.count).toBe(result.cancelled.length);
      expect(result.cancelled.every((o) => o.status === 'cancelled')).toBe(true);
    });

    it('closePosition() answers the closing order with its fills', async () => {
      // Bob's resting bid at 0.25 takes what Alice closes.
      const closing = expectShape('closePosition', await alice.trading.closePosition(symbol, { selfTradePrevention: 'cancel_taker' }), ORDER_WITH_FILLS);
      expect(closing).toMatchObject({ market, side: 'sell', type: 'market' });
      expectList('closePosition.fills', closing.fills, FILL);
    });
  });

  describe('account and withdrawals', () => {
    it('balances() returns the list of balances', async () => {
      const balances = expectList('balances', await bob.account.balances(), BALANCE);
      // 40 bought from Alice's ask, 10 from her closePosition into the resting bid.
      expect(balances.find((b) => b.asset === symbol)).toMatchObject({ available: '50', held: '0', total: '50' });
    });

    it('portfolio() answers positions valued in valuationAsset', async () => {
      const portfolio = expectShape('portfolio', await bob.account.portfolio(), PORTFOLIO);
      expect(portfolio.valuationAsset).toBe('USDC');
      expectList('portfolio.positions', portfolio.positions, POSITION);
    });

    it('withdrawals.create() answers the withdrawal; list() returns the list, filtered by status and before', async () => {
      const first = expectShape('withdrawals.create', await bob.withdrawals.create({ asset: 'USDC', amount: '1', address: '0x52908400098527886E0F7030069857D2E4169EE7' }), WITHDRAWAL);
      const second = await bob.withdrawals.create({ asset: 'USDC', amount: '2', address: '0x52908400098527886E0F7030069857D2E4169EE7' });
      const list = expectList('withdrawals.list', await bob.withdrawals.list(), WITHDRAWAL);
      expect(list.map((w) => w.id)).toEqual([second.id, first.id]);
      expect((await bob.withdrawals.list({ before: second.id, limit: 5 })).map((w) => w.id)).toEqual([first.id]);
      expect(await bob.withdrawals.list({ status: 'rejected' })).toEqual([]);
    });
  });

  describe('tokens', () => {
    it('create() answers { token, market }', () => {
      expectShape('tokens.create', launched, LAUNCHED);
      expectShape('tokens.create.token', launched.token, TOKEN);
      expectShape('tokens.create.market', launched.market, MARKET);
      expect(launched.token).toMatchObject({ symbol, name: 'Shape Check', market });
      expect(launched.market.symbol).toBe(market);
    });

    it('list() returns the list of tokens, all or only mine', async () => {
      expectList('tokens.list', await bob.tokens.list(), TOKEN);
      expect((await alice.tokens.list({ mine: true, limit: 10 })).map((t) => t.symbol)).toEqual([symbol]);
      expect(await bob.tokens.list({ mine: true })).toEqual([]);
    });

    it('get() and update() answer the token', async () => {
      expectShape('tokens.get', await bob.tokens.get(symbol), TOKEN);
      const updated = expectShape('tokens.update', await alice.tokens.update(symbol, { description: 'Shapes', website: 'https://example.com/' }), TOKEN);
      expect(updated).toMatchObject({ description: 'Shapes', website: 'https://example.com/', imageUrl: null });
    });
  });
});
