/**
 * The SDK's market, trading, account, withdrawal and token methods against a real server: each result
 * has exactly the fields its declared type names (no more, none missing), each of the kind declared
 * (decimal strings, integers and epoch ms, nulls only where the type allows them). Lists come back as
 * arrays (the server's `{ markets }`, `{ tickers }`, … envelopes unwrapped), paged lists as the
 * server's `{ orders, next }` / `{ fills, next }`, and the query parameters the SDK declares are the
 * ones the server accepts. Each method's result is also checked against what the server did (a
 * cancel-all with no market empties every market, limits add up the fills and withdrawals, …).
 */
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MoondraftClient,
  MoondraftError,
  type AddressBook,
  type Asset,
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
  type TradingLimit,
  type Withdrawal,
  type WithdrawalAddress,
  type WithdrawalLimit,
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
      : [V] extends [number | null]
        ? 'int?'
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
    case 'int?':
      return v === null || Number.isSafeInteger(v);
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
  clientWithdrawalId: 'string?',
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
const ASSET: Spec<Asset> = { symbol: 'string', name: 'string', decimals: 'int', faucet: 'bool', createdAt: 'int' };
const TRADING_LIMIT: Spec<TradingLimit> = { asset: 'string', limit: 'decimal', overridden: 'bool', traded24h: 'decimal', open: 'decimal', remaining: 'decimal', maxOpenOrders: 'int' };
const WITHDRAWAL_LIMIT: Spec<WithdrawalLimit> = { tier: 'int', limit: 'decimal', used: 'decimal', remaining: 'decimal', autoApproveUpTo: 'decimal', valuationAsset: 'string' };
const ADDRESS: Spec<WithdrawalAddress> = { id: 'string', chain: 'string', address: 'string', label: 'string?', usableAt: 'int', createdAt: 'int' };
const ADDRESS_BOOK: Spec<AddressBook> = { enabled: 'bool', disablesAt: 'int?', addresses: 'array' };

/** Withdrawals worth more than this wait for an admin (the suite's server setting), so they can be cancelled. */
const AUTO_APPROVE = '5';
const WALLET = '0x52908400098527886E0F7030069857D2E4169EE7';
const OTHER_WALLET = '0xde709f2102306220921060314715629080e2fb77';

/** Decimal strings as integers of 6 decimal places (USDC's), for exact sums. */
const micro = (d: string): bigint => {
  const [whole, frac = ''] = d.replace('-', '').split('.');
  const v = BigInt(whole!) * 1_000_000n + BigInt(frac.padEnd(6, '0').slice(0, 6));
  return d.startsWith('-') ? -v : v;
};

/** Runs `fn` expecting a refusal with `code`. */
async function refusedWith(code: string, fn: () => Promise<unknown>): Promise<MoondraftError> {
  const error = await fn().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected ${code}`).toBeInstanceOf(MoondraftError);
  expect((error as MoondraftError).code).toBe(code);
  return error as MoondraftError;
}

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
    server = await startRealServer({ backend, env: { MOONDRAFT_WITHDRAWAL_AUTO_APPROVE: AUTO_APPROVE } });
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

    it('assets() returns the list of assets with their decimals', async () => {
      const assets = expectList('assets', await bob.market.assets(), ASSET);
      expect(assets.find((a) => a.symbol === 'USDC')).toMatchObject({ decimals: 6, faucet: true });
      expect(assets.find((a) => a.symbol === symbol)).toMatchObject({ name: 'Shape Check', decimals: 6 });
      // The decimals every amount of the asset carries: the launched market's base decimals.
      expect(assets.find((a) => a.symbol === symbol)!.decimals).toBe(launched.market.baseDecimals);
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
      // The order has one fill: a page of one holds it all, and says it is the last.
      expect((await bob.trading.fills({ orderId: taken.id })).fills).toHaveLength(1);
      const mine = await bob.trading.fills({ orderId: taken.id, limit: 1 });
      expect(mine.fills).toHaveLength(1);
      expect(mine.next).toBeNull();
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
      // The SDK gave the close a clientOrderId (so a retry returns this order), and the server kept it.
      expect(closing.clientOrderId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
      expectList('closePosition.fills', closing.fills, FILL);
    });

    it('cancelAllOrders() without a market cancels the open orders of every market', async () => {
      // A second market, launched by a third account (Alice's and Bob's token lists stay as the tokens tests expect).
      const carol = await signedIn();
      const second = `SHQ${symbol.slice(3)}`;
      await carol.tokens.create({ name: 'Second Shape', symbol: second, decimals: 6, supply: '1000' });
      carol.close();
      const other = `${second}-USDC`;
      const here = await bob.trading.placeOrder({ market, side: 'buy', type: 'limit', price: '0.2', quantity: '10' });
      const there = await bob.trading.placeOrder({ market: other, side: 'buy', type: 'limit', price: '0.2', quantity: '10' });
      const open = (await bob.trading.orders({ status: 'open' })).orders;
      expect(new Set(open.map((o) => o.market))).toEqual(new Set([market, other]));

      const result = expectShape('cancelAllOrders()', await bob.trading.cancelAllOrders(), CANCEL_ALL);
      expectList('cancelAllOrders().cancelled', result.cancelled, ORDER);
      expect(result.count).toBe(open.length);
      expect(result.cancelled.map((o) => o.id).sort()).toEqual(open.map((o) => o.id).sort());
      expect(result.cancelled.map((o) => o.id)).toEqual(expect.arrayContaining([here.id, there.id]));
      expect(new Set(result.cancelled.map((o) => o.market))).toEqual(new Set([market, other]));
      expect(result.cancelled.every((o) => o.status === 'cancelled')).toBe(true);
      // The server agrees: nothing is left open in either market.
      expect((await bob.trading.orders({ status: 'open' })).orders).toEqual([]);
      expect((await bob.trading.order(there.id)).status).toBe('cancelled');
      expect(() => bob.trading.cancelAllOrders('')).toThrow(TypeError);
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

    it('tradingLimit() answers the daily limit with what the fills and open orders used', async () => {
      const limit = expectShape('tradingLimit', await bob.account.tradingLimit(), TRADING_LIMIT);
      expect(limit).toMatchObject({ asset: 'USDC', overridden: false, open: '0' });
      const { fills } = await bob.trading.fills({ limit: 500 });
      const traded = fills.reduce((sum, f) => sum + micro(f.notional), 0n);
      expect(traded).toBeGreaterThan(0n);
      expect(micro(limit.traded24h)).toBe(traded);
      expect(micro(limit.remaining)).toBe(micro(limit.limit) - traded);

      // A resting order counts as open until it trades or is cancelled.
      const resting = await bob.trading.placeOrder({ market, side: 'buy', type: 'limit', price: '0.1', quantity: '20' });
      expect(micro((await bob.account.tradingLimit()).open)).toBe(micro(resting.price!) * 20n);
      await bob.trading.cancelOrder(resting.id);
      expect((await bob.account.tradingLimit()).open).toBe('0');
    });

    it('withdrawals.create() answers the withdrawal; list() returns the list, filtered by status and before', async () => {
      const first = expectShape('withdrawals.create', await bob.withdrawals.create({ asset: 'USDC', amount: '1', address: '0x52908400098527886E0F7030069857D2E4169EE7' }), WITHDRAWAL);
      const second = await bob.withdrawals.create({ asset: 'USDC', amount: '2', address: '0x52908400098527886E0F7030069857D2E4169EE7' });
      const list = expectList('withdrawals.list', await bob.withdrawals.list(), WITHDRAWAL);
      expect(list.map((w) => w.id)).toEqual([second.id, first.id]);
      expect((await bob.withdrawals.list({ before: second.id, limit: 5 })).map((w) => w.id)).toEqual([first.id]);
      expect(await bob.withdrawals.list({ status: 'rejected' })).toEqual([]);
    });

    it('withdrawals.get() answers one withdrawal; cancel() answers it cancelled and releases its funds', async () => {
      const before = (await bob.account.balances()).find((b) => b.asset === 'USDC')!;
      const pending = await bob.withdrawals.create({ asset: 'USDC', amount: '7', address: WALLET });
      expect(pending.status).toBe('pending');
      expect(expectShape('withdrawals.get', await bob.withdrawals.get(pending.id), WITHDRAWAL)).toEqual(pending);
      expect((await bob.account.balances()).find((b) => b.asset === 'USDC')!.held).toBe(String(Number(before.held) + 7));

      const cancelled = expectShape('withdrawals.cancel', await bob.withdrawals.cancel(pending.id), WITHDRAWAL);
      expect(cancelled).toMatchObject({ id: pending.id, status: 'cancelled', amount: '7' });
      expect(await bob.withdrawals.get(pending.id)).toEqual(cancelled);
      expect((await bob.account.balances()).find((b) => b.asset === 'USDC')).toEqual(before);
      await refusedWith('conflict', () => bob.withdrawals.cancel(pending.id));
      // Another account's withdrawal does not exist for this one.
      await refusedWith('not_found', () => alice.withdrawals.get(pending.id));
    });

    it('withdrawals.limit() answers the tier, its limit and what the counted withdrawals used', async () => {
      const limit = expectShape('withdrawals.limit', await bob.withdrawals.limit(), WITHDRAWAL_LIMIT);
      expect(limit).toMatchObject({ tier: 0, limit: '1000', autoApproveUpTo: AUTO_APPROVE, valuationAsset: 'USDC' });
      const counted = (await bob.withdrawals.list()).filter((w) => ['pending', 'approved', 'sent'].includes(w.status));
      const used = counted.reduce((sum, w) => sum + micro(w.usdcValue), 0n);
      expect(used).toBeGreaterThan(0n);
      expect(micro(limit.used)).toBe(used);
      expect(micro(limit.remaining)).toBe(micro(limit.limit) - used);
    });

    it('the address book: addressBook(), saveAddress(), setAddressBook(), removeAddress()', async () => {
      const hold = server.config.withdrawals.addressHoldMs;
      const empty = await alice.withdrawals.addressBook();
      expectShape('addressBook', empty, ADDRESS_BOOK);
      expect(empty).toEqual({ enabled: false, disablesAt: null, addresses: [] });

      const saved = expectShape('saveAddress', await alice.withdrawals.saveAddress({ chain: 'evm', address: WALLET, label: 'cold wallet' }), ADDRESS);
      expect(saved).toMatchObject({ chain: 'evm', address: WALLET, label: 'cold wallet' });
      expect(saved.usableAt - saved.createdAt).toBe(hold);
      await refusedWith('conflict', () => alice.withdrawals.saveAddress({ chain: 'evm', address: WALLET }));

      const on = expectShape('setAddressBook', await alice.withdrawals.setAddressBook(true), ADDRESS_BOOK);
      expect(on).toEqual({ enabled: true, disablesAt: null, addresses: [saved] });
      expectList('addressBook.addresses', on.addresses, ADDRESS);
      // On, the book binds withdrawals: an address not saved (or still in its hold) is refused.
      await refusedWith('address_not_allowed', () => alice.withdrawals.create({ asset: 'USDC', amount: '1', address: OTHER_WALLET }));
      await refusedWith('address_not_allowed', () => alice.withdrawals.create({ asset: 'USDC', amount: '1', address: WALLET })); // saved, still in its hold

      // Off waits out the hold: still on until disablesAt.
      const off = expectShape('setAddressBook', await alice.withdrawals.setAddressBook(false), ADDRESS_BOOK);
      expect(off.enabled).toBe(true);
      expect(Number.isSafeInteger(off.disablesAt)).toBe(true);
      expect(off.disablesAt! - Date.now()).toBeGreaterThan(hold - 60_000);
      expect(await alice.withdrawals.addressBook()).toEqual(off);

      await alice.withdrawals.removeAddress(saved.id);
      expect((await alice.withdrawals.addressBook()).addresses).toEqual([]);
      await refusedWith('not_found', () => alice.withdrawals.removeAddress(saved.id));
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
      // Paging: one token per page, following `next`, gives what one big page gives.
      const whole = (await bob.tokens.list({ limit: 500 })).map((t) => t.symbol);
      const paged: string[] = [];
      for (let page = await bob.tokens.page({ limit: 1 }); ; page = await bob.tokens.page({ limit: 1, before: page.next! })) {
        paged.push(...page.tokens.map((t) => t.symbol));
        if (page.next === null) break;
      }
      expect(paged).toEqual(whole);
    });

    it('get() and update() answer the token', async () => {
      expectShape('tokens.get', await bob.tokens.get(symbol), TOKEN);
      const updated = expectShape('tokens.update', await alice.tokens.update(symbol, { description: 'Shapes', website: 'https://example.com/' }), TOKEN);
      expect(updated).toMatchObject({ description: 'Shapes', website: 'https://example.com/', imageUrl: null });
    });
  });
});
