import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mayGoNegative } from '../../src/trading/ledger/owners.js';
import { parseAmount, pow10, readMinor } from '../../src/trading/money.js';
import { sessionFor } from '../support/auth.js';
import { prng } from '../support/prng.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { fund, MOON } from '../support/trading.js';

/**
 * A randomized, concurrent, end-to-end consistency test of the trading core. Several funded
 * traders send a seeded mix of orders (limit and market; GTC, IOC, FOK; with and without
 * clientOrderId, and the same clientOrderId raced on purpose), cancels, cancel-alls, position
 * closes, faucet grants, withdrawals (requests, retries, cancels, admin approvals and rejections)
 * and token launches, many at once, over HTTP; on scale-out spread over two servers sharing one
 * PostgreSQL schema and one Redis. Then the invariants: the ledger verifies, every asset sums to
 * zero, nothing is negative, every held balance is exactly what open orders and undecided
 * withdrawals hold, every acknowledged order exists once with its clientOrderId, books rebuilt
 * from the store (a fresh server) equal the live ones, and the audit chain verifies.
 *
 * The seed is in the test's name and in every failure message: FUZZ_SEED=<n> replays its draws
 * (the interleaving is the machine's). FUZZ_OPS, FUZZ_WORKERS (requests in flight) and
 * FUZZ_TRADERS change the load: fewer traders and more workers make each balance hotter (3 traders,
 * 32 workers and 1500 operations found faucet grants starved into 500s on scale-out; see
 * hot-balance.test.ts). FUZZ_VERBOSE=1 prints the answers' tally and the timings.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 0x66757a7a);
const OPS = Number(process.env.FUZZ_OPS ?? 400);
/** Requests in flight at once. */
const WORKERS = Number(process.env.FUZZ_WORKERS ?? 16);
const TRADERS = Number(process.env.FUZZ_TRADERS ?? 4);

const scaleoutUp = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));
const backends = scaleoutUp ? (['embedded', 'scaleout'] as const) : (['embedded'] as const);

const ENV = {
  // Small withdrawals go out at once, larger ones wait for an admin: both paths are exercised.
  MOONDRAFT_WITHDRAWAL_AUTO_APPROVE: '60',
  MOONDRAFT_WITHDRAWAL_LIMIT_TIER0: '100000',
  MOONDRAFT_TOKEN_DAILY_CREATIONS: '3',
};

type Session = Awaited<ReturnType<typeof sessionFor>>;
type Reply = { statusCode: number; headers: Record<string, unknown>; body: string; json(): any };
interface MarketInfo {
  symbol: string;
  base: string;
  /** Quantities are drawn as whole multiples of this lot, written with this many decimals. */
  qtyUnit: number;
  qtyDecimals: number;
}

/** Answers allowed besides 2xx, per operation: anything else (a 5xx above all) is a finding. */
const REFUSALS: Record<string, string[]> = {
  place: ['insufficient_funds', 'daily_limit_exceeded', 'validation_failed'],
  cancel: ['conflict', 'not_found'],
  cancelAll: [],
  // not_found: the market is delisted.
  close: ['conflict', 'insufficient_funds', 'validation_failed', 'not_found'],
  faucet: ['faucet_limit_exceeded'],
  withdraw: ['insufficient_funds', 'withdrawal_limit_exceeded', 'conflict'],
  withdrawCancel: ['conflict', 'not_found'],
  decide: ['conflict', 'not_found'],
  launch: ['token_creation_limit_exceeded', 'conflict'],
  listing: ['conflict'],
  read: [],
};

function toMinor(text: string, decimals: number): bigint {
  const r = parseAmount(text, decimals, 'amount', { positive: false });
  if (!r.ok) throw new Error(`${text}: ${r.detail}`);
  return r.value;
}

describe.each(backends)('randomized concurrent trading on %s', (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  it(`keeps the ledger, the books, idempotency and the audit chain consistent (seed ${SEED})`, { timeout: 60_000 }, async () => {
    const started = Date.now();
    const tag = `seed ${SEED} (FUZZ_SEED=${SEED} replays its draws)`;
    const isolation = newIsolation();
    const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-fuzz-'));
    const start = () =>
      backend === 'scaleout' ? startTestServer({ backend, isolation, dataDir, env: ENV }) : startTestServer({ backend, sqliteFile: true, dataDir, env: ENV });
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    if (backend === 'scaleout') cleanups.push(() => dropSchema(isolation.pgSchema));
    const a = await start();
    let aClosed = false;
    cleanups.push(async () => {
      if (!aClosed) await a.close();
    });
    // Embedded as served: a SQLite file, the sequencer on the order thread beside the server thread.
    expect(a.services.trading.orders.threaded).toBe(true);
    const servers: TestServer[] = [a];
    if (backend === 'scaleout') {
      const b = await start();
      cleanups.push(() => b.close());
      servers.push(b);
    }

    // Setup: two admins (an admin may not decide on their own withdrawal), MOON-USDC, funded traders.
    const admins = [await sessionFor(a, { role: 'admin' }), await sessionFor(a, { role: 'admin' })];
    const adminPost = async (url: string, payload: unknown) => {
      const r = await a.app.inject({ method: 'POST', url, headers: admins[0]!.headers, payload: payload as Record<string, unknown> });
      expect(r.statusCode, r.body).toBe(201);
      return r.json();
    };
    await adminPost('/api/v1/admin/assets', { symbol: 'MOON', name: 'Moon', decimals: 6 });
    await adminPost('/api/v1/admin/markets', { base: 'MOON', quote: 'USDC', tickSize: '0.01', lotSize: '0.01', minNotional: '0.01', makerFeeBps: 10, takerFeeBps: 20 });
    const markets: MarketInfo[] = [{ symbol: 'MOON-USDC', base: 'MOON', qtyUnit: 0.01, qtyDecimals: 2 }];
    const traders: Session[] = [];
    for (let i = 0; i < TRADERS; i++) {
      const s = await sessionFor(a);
      // Out of the way of the rate limiter: the test is about the trading core.
      await a.services.partnerLimits.set(s.account.id, { trading: 100_000, account: 100_000, tokens: 100_000 }, admins[0]!.account.id);
      const faucet = await a.app.inject({ method: 'POST', url: '/api/v1/sandbox/faucet', headers: s.headers, payload: { asset: 'USDC', amount: '2000' } });
      expect(faucet.statusCode, faucet.body).toBe(200);
      await fund(a.services.trading, s.account.id, 'MOON', MOON(400));
      traders.push(s);
    }

    // What the servers acknowledged.
    const acked = new Map<string, { trader: number; clientOrderId: string | null }>();
    const createdByCid = new Map<string, Set<string>>(); // `${trader}/${cid}` → order ids answered 201
    const idsByCid = new Map<string, Set<string>>(); // `${trader}/${cid}` → every order id answered
    const ordersOf: string[][] = traders.map(() => []);
    /** Orders answered as resting (they may have filled or been cancelled since). */
    const restingOf: string[][] = traders.map(() => []);
    const withdrawals: { id: string; trader: number }[] = [];
    const withdrawalsByCid = new Map<string, Set<string>>();
    const failures: string[] = [];
    const tally = new Map<string, number>();

    const rand = prng(SEED);
    const int = (n: number) => Math.floor(rand() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const chance = (p: number) => rand() < p;

    const check = (op: string, what: string, r: Reply): boolean => {
      const code = r.statusCode >= 400 ? (r.json() as { code?: string }).code ?? String(r.statusCode) : 'ok';
      tally.set(`${op} ${code}`, (tally.get(`${op} ${code}`) ?? 0) + 1);
      if (r.statusCode < 300) return true;
      if (r.statusCode >= 500 || !REFUSALS[op]!.includes(code)) {
        // A 5xx names only its request id: the servers' log lines for it say what happened.
        const requestId = (r.json() as { requestId?: string }).requestId;
        const logged = requestId === undefined ? [] : servers.flatMap((srv) => srv.logText().split('\n').filter((l) => l.includes(requestId) && l.includes('"err"')));
        failures.push(`${op} ${what} → ${r.statusCode} ${r.body}${logged.length > 0 ? ` logged ${logged.join('; ')}` : ''}`);
      }
      return false;
    };
    const inject = (server: TestServer, s: Session, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown): Promise<Reply> =>
      server.app.inject({ method, url, headers: s.headers, ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) }) as Promise<Reply>;

    const noteOrder = (op: string, trader: number, cid: string | null, r: Reply, what: string) => {
      if (!check(op, what, r)) return;
      const o = r.json() as { id: string; clientOrderId: string | null };
      if (o.clientOrderId !== cid) failures.push(`${what} answered clientOrderId ${o.clientOrderId}`);
      if (r.statusCode === 200 && r.headers['idempotent-replayed'] !== 'true') failures.push(`${what} answered 200 without Idempotent-Replayed`);
      if (r.statusCode === 201 && cid === null && acked.has(o.id)) failures.push(`${what} answered 201 for ${o.id} twice`);
      acked.set(o.id, { trader, clientOrderId: cid });
      if (r.statusCode === 201) ordersOf[trader]!.push(o.id);
      if (r.statusCode === 201 && (r.json().status === 'open' || r.json().status === 'partially_filled')) restingOf[trader]!.push(o.id);
      if (cid !== null) {
        const k = `${trader}/${cid}`;
        if (!idsByCid.has(k)) idsByCid.set(k, new Set());
        idsByCid.get(k)!.add(o.id);
        if (r.statusCode === 201) {
          if (!createdByCid.has(k)) createdByCid.set(k, new Set());
          createdByCid.get(k)!.add(o.id);
        }
      }
    };

    const priceText = () => ((94 + int(13)) / 100).toFixed(2);
    // Launched tokens trade in whole tokens with a minimum order of 1 USDC.
    const qtyText = (m: MarketInfo) => (m.qtyUnit * (m.qtyDecimals > 0 ? 1 + int(400) : 2 + int(5))).toFixed(m.qtyDecimals);
    const cidFor = (t: number) => (chance(0.45) ? `c${t}-${int(40)}` : null);
    let launches = 0;

    // One operation, drawn from the seed; what it picks among earlier answers (the order to cancel,
    // the withdrawal to decide) depends on which answers have arrived, so on the interleaving too.
    const operation = async (n: number): Promise<void> => {
      const t = int(TRADERS);
      const s = traders[t]!;
      const server = pick(servers);
      const roll = int(100);
      if (roll < 44) {
        const m = pick(markets);
        const type = chance(0.8) ? 'limit' : 'market';
        const body: Record<string, unknown> = { market: m.symbol, side: chance(0.5) ? 'buy' : 'sell', type, quantity: qtyText(m) };
        if (type === 'limit') body.price = priceText();
        const tif = pick(type === 'limit' ? ['GTC', 'GTC', 'IOC', 'FOK', undefined] : ['IOC', 'FOK', undefined]);
        if (tif) body.timeInForce = tif;
        if (chance(0.15)) body.selfTradePrevention = pick(['cancel_taker', 'cancel_maker', 'cancel_both']);
        const cid = cidFor(t);
        if (cid !== null) body.clientOrderId = cid;
        // A deliberate retry: the same request sent again at once, to any server.
        const copies = cid !== null && chance(0.4) ? 2 + int(2) : 1;
        const targets = Array.from({ length: copies }, (_, i) => (i === 0 ? server : pick(servers)));
        const replies = await Promise.all(targets.map((srv) => inject(srv, s, 'POST', '/api/v1/trading/orders', body)));
        replies.forEach((r, i) => noteOrder('place', t, cid, r, `#${n} place ${JSON.stringify(body)} copy ${i}`));
      } else if (roll < 55) {
        const own = chance(0.8) && restingOf[t]!.length > 0 ? restingOf[t]! : ordersOf[t]!;
        const other = ordersOf[(t + 1) % TRADERS]!;
        const foreign = chance(0.1) && other.length > 0;
        if (own.length === 0 && !foreign) return;
        const id = foreign ? pick(other) : pick(own);
        const r = await inject(server, s, 'DELETE', `/api/v1/trading/orders/${id}`);
        if (check('cancel', `#${n} cancel ${id}`, r) && foreign) failures.push(`#${n} cancelled another trader's order ${id}`);
      } else if (roll < 57) {
        const url = chance(0.5) ? '/api/v1/trading/orders' : `/api/v1/trading/orders?market=${pick(markets).symbol}`;
        check('cancelAll', `#${n} cancel all ${url}`, await inject(server, s, 'DELETE', url));
      } else if (roll < 60) {
        const m = pick(markets);
        const cid = cidFor(t);
        const body = cid !== null ? { clientOrderId: cid } : {};
        const copies = cid !== null && chance(0.4) ? 2 : 1;
        const targets = Array.from({ length: copies }, (_, i) => (i === 0 ? server : pick(servers)));
        const replies = await Promise.all(targets.map((srv) => inject(srv, s, 'POST', `/api/v1/trading/positions/${m.base}/close`, body)));
        replies.forEach((r, i) => noteOrder('close', t, cid, r, `#${n} close ${m.base} ${JSON.stringify(body)} copy ${i}`));
      } else if (roll < 70) {
        const amount = String(1 + int(800));
        check('faucet', `#${n} faucet ${amount}`, await inject(server, s, 'POST', '/api/v1/sandbox/faucet', { asset: 'USDC', amount }));
      } else if (roll < 80) {
        const usdc = chance(0.8);
        const body: Record<string, unknown> = { asset: usdc ? 'USDC' : 'MOON', amount: usdc ? String(5 + int(90)) : String(1 + int(5)), address: `0x${'ab'.repeat(19)}${t.toString(16).padStart(2, '0')}` };
        const cid = chance(0.4) ? `w${t}-${int(6)}` : null;
        if (cid !== null) body.clientWithdrawalId = cid;
        const copies = cid !== null && chance(0.4) ? 2 : 1;
        const targets = Array.from({ length: copies }, (_, i) => (i === 0 ? server : pick(servers)));
        const replies = await Promise.all(targets.map((srv) => inject(srv, s, 'POST', '/api/v1/account/withdrawals', body)));
        replies.forEach((r, i) => {
          if (!check('withdraw', `#${n} withdraw ${JSON.stringify(body)} copy ${i}`, r)) return;
          const w = r.json() as { id: string };
          if (r.statusCode === 201) withdrawals.push({ id: w.id, trader: t });
          if (cid !== null) {
            const k = `${t}/${cid}`;
            if (!withdrawalsByCid.has(k)) withdrawalsByCid.set(k, new Set());
            withdrawalsByCid.get(k)!.add(w.id);
          }
        });
      } else if (roll < 84) {
        const own = withdrawals.filter((w) => w.trader === t);
        if (own.length === 0) return;
        const w = pick(own);
        check('withdrawCancel', `#${n} cancel withdrawal ${w.id}`, await inject(server, s, 'POST', `/api/v1/account/withdrawals/${w.id}/cancel`));
      } else if (roll < 91) {
        if (withdrawals.length === 0) return;
        const w = pick(withdrawals);
        const verb = chance(0.7) ? 'approve' : 'reject';
        check('decide', `#${n} ${verb} ${w.id}`, await inject(server, pick(admins), 'POST', `/api/v1/admin/withdrawals/${w.id}/${verb}`, {}));
      } else if (roll < 93) {
        if (launches >= 3) return;
        launches++;
        const symbol = `FZ${n}`;
        const r = await inject(server, s, 'POST', '/api/v1/tokens', { name: `Fuzz ${n}`, symbol, decimals: 6, supply: '1000' });
        if (check('launch', `#${n} launch ${symbol}`, r)) markets.push({ symbol: `${symbol}-USDC`, base: symbol, qtyUnit: 1, qtyDecimals: 0 });
      } else if (roll < 95) {
        // Delist or relist (with other terms) a launched token's market while it trades.
        const m = markets.find((x, i) => i > 0 && chance(0.5));
        if (!m) return;
        const admin = pick(admins);
        if (chance(0.5)) check('listing', `#${n} delist ${m.symbol}`, await inject(server, admin, 'DELETE', `/api/v1/admin/markets/${m.symbol}`));
        else check('listing', `#${n} relist ${m.symbol}`, await inject(server, admin, 'POST', '/api/v1/admin/markets', { base: m.base, quote: 'USDC', tickSize: pick(['0.01', '0.000001']), lotSize: '1', minNotional: '1' }));
      } else {
        const m = pick(markets);
        check('read', `#${n} book ${m.symbol}`, await inject(server, s, 'GET', `/api/v1/market/orderbook/${m.symbol}?depth=100`));
        const own = ordersOf[t]!;
        if (own.length > 0) check('read', `#${n} order`, await inject(server, s, 'GET', `/api/v1/trading/orders/${pick(own)}`));
      }
    };

    let next = 0;
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (next < OPS) await operation(next++);
      }),
    );
    const fuzzed = Date.now();
    expect(failures, `${tag}: unexpected answers (tally ${JSON.stringify(Object.fromEntries(tally))})`).toEqual([]);

    // ---- invariants -----------------------------------------------------------------------------
    const db = a.services.store.db;
    const report = await a.services.trading.ledger.verify();
    expect(report.violation, tag).toBeUndefined();

    const balances = await db.selectFrom('balances').selectAll().execute();
    const perAsset = new Map<string, bigint>();
    for (const b of balances) {
      const available = readMinor(b.available);
      const held = readMinor(b.held);
      perAsset.set(b.asset, (perAsset.get(b.asset) ?? 0n) + available + held);
      if (!mayGoNegative(b.owner)) expect(available >= 0n && held >= 0n, `${tag}: ${b.owner} ${b.asset} ${available}/${held}`).toBe(true);
    }
    for (const [asset, sum] of perAsset) expect(sum, `${tag}: ${asset} sums to ${sum}`).toBe(0n);

    // Held = what open orders and undecided withdrawals hold, hold by hold.
    const orders = await db.selectFrom('orders').selectAll().execute();
    const byId = new Map(orders.map((o) => [o.id, o]));
    const holds = await db.selectFrom('holds').selectAll().execute();
    const activeHolds = new Map(holds.filter((h) => h.status === 'active').map((h) => [h.id, h]));
    const marketRows = new Map((await db.selectFrom('markets').selectAll().execute()).map((m) => [m.symbol, m]));
    const decimalsOf = new Map((await db.selectFrom('assets').select(['symbol', 'decimals']).execute()).map((r) => [r.symbol, Number(r.decimals)]));
    const expectedHeld = new Map<string, bigint>();
    const addHeld = (owner: string, asset: string, amount: bigint) => expectedHeld.set(`${owner}/${asset}`, (expectedHeld.get(`${owner}/${asset}`) ?? 0n) + amount);
    for (const o of orders) {
      const open = o.status === 'open' || o.status === 'partially_filled';
      const hold = activeHolds.get(o.id);
      if (!open) {
        expect(hold, `${tag}: closed order ${o.id} (${o.status}) still holds`).toBeUndefined();
        expect(readMinor(o.remaining), `${tag}: closed order ${o.id} remaining`).toBe(0n);
        continue;
      }
      const m = marketRows.get(o.market)!;
      expect(m.status, `${tag}: open order ${o.id} in a delisted market`).toBe('active');
      expect(hold, `${tag}: open order ${o.id} has no active hold`).toBeDefined();
      expect(readMinor(o.remaining), `${tag}: order ${o.id} remaining`).toBe(readMinor(o.quantity) - readMinor(o.filled));
      const remaining = readMinor(o.remaining);
      expect(remaining > 0n, `${tag}: open order ${o.id} with nothing remaining`).toBe(true);
      const amount = readMinor(hold!.amount);
      expect(hold!.owner, tag).toBe(o.account_id);
      if (o.side === 'sell') {
        expect(hold!.asset, tag).toBe(m.base);
        expect(amount, `${tag}: sell ${o.id} holds ${amount} for ${remaining}`).toBe(remaining);
      } else {
        expect(hold!.asset, tag).toBe(m.quote);
        // A resting buy holds its notional plus the larger fee; fills as maker take the maker fee
        // (and fees round down), so a partly filled one holds more than its remainder needs, never
        // less, and never more than its whole quantity would.
        const holdFor = (qty: bigint) => {
          const notional = (readMinor(o.price) * qty) / pow10(decimalsOf.get(m.base)!);
          return notional + (notional * BigInt(Math.max(Number(m.maker_fee_bps), Number(m.taker_fee_bps)))) / 10_000n;
        };
        if (readMinor(o.filled) === 0n) expect(amount, `${tag}: buy ${o.id}`).toBe(holdFor(remaining));
        else expect(amount >= holdFor(remaining) && amount <= holdFor(readMinor(o.quantity)), `${tag}: buy ${o.id} holds ${amount} for ${holdFor(remaining)}`).toBe(true);
      }
      addHeld(hold!.owner, hold!.asset, amount);
    }
    const withdrawalRows = await db.selectFrom('withdrawals').selectAll().execute();
    for (const w of withdrawalRows) {
      const hold = activeHolds.get(w.id);
      if (w.status === 'pending' || w.status === 'approved') {
        expect(hold && readMinor(hold.amount), `${tag}: withdrawal ${w.id} (${w.status}) hold`).toBe(readMinor(w.amount));
        addHeld(w.account_id, w.asset, readMinor(w.amount));
      } else {
        expect(hold, `${tag}: withdrawal ${w.id} (${w.status}) still holds`).toBeUndefined();
      }
    }
    for (const id of activeHolds.keys()) expect(byId.has(id) || withdrawalRows.some((w) => w.id === id), `${tag}: hold ${id} of nothing`).toBe(true);
    for (const b of balances) {
      if (mayGoNegative(b.owner)) continue;
      expect(readMinor(b.held), `${tag}: held ${b.asset} of ${b.owner}`).toBe(expectedHeld.get(`${b.owner}/${b.asset}`) ?? 0n);
    }

    // Fills add up to what each order says it filled.
    const fills = await db.selectFrom('fills').selectAll().execute();
    const filled = new Map<string, bigint>();
    for (const f of fills) for (const id of [f.taker_order_id, f.maker_order_id]) filled.set(id, (filled.get(id) ?? 0n) + readMinor(f.quantity));
    for (const o of orders) {
      expect(filled.get(o.id) ?? 0n, `${tag}: fills of ${o.id}`).toBe(readMinor(o.filled));
      expect(readMinor(o.filled) <= readMinor(o.quantity), `${tag}: ${o.id} overfilled`).toBe(true);
    }
    for (const [symbol] of marketRows) {
      const seqs = fills.filter((f) => f.market === symbol).map((f) => Number(f.trade_seq));
      expect(new Set(seqs).size, `${tag}: trade seqs of ${symbol}`).toBe(seqs.length);
    }

    // What the daily limit counts: resting notional and traded notional per account, as the
    // orders and fills say (the terms here make every notional exact, so no rounding slack).
    const exposure = new Map<string, bigint>();
    for (const o of orders) {
      if (!(o.status === 'open' || o.status === 'partially_filled')) continue;
      const m = marketRows.get(o.market)!;
      exposure.set(o.account_id, (exposure.get(o.account_id) ?? 0n) + (readMinor(o.price) * readMinor(o.remaining)) / pow10(decimalsOf.get(m.base)!));
    }
    for (const e of await db.selectFrom('trading_exposure').selectAll().execute()) {
      expect(readMinor(e.open_notional), `${tag}: resting notional of ${e.account_id}`).toBe(exposure.get(e.account_id) ?? 0n);
      exposure.delete(e.account_id);
    }
    for (const [account, n] of exposure) expect(n, `${tag}: ${account} rests ${n} with no exposure row`).toBe(0n);
    const traded = new Map<string, bigint>();
    for (const f of fills) for (const acc of [f.taker_account_id, f.maker_account_id]) traded.set(acc, (traded.get(acc) ?? 0n) + readMinor(f.notional));
    const usage = new Map<string, bigint>();
    for (const u of await db.selectFrom('trading_usage').selectAll().execute()) usage.set(u.account_id, (usage.get(u.account_id) ?? 0n) + readMinor(u.notional));
    expect(Object.fromEntries(usage), `${tag}: traded notional per account`).toEqual(Object.fromEntries([...traded].filter(([, n]) => n > 0n)));

    // Market rows and candles agree with the fills.
    const candles = await db.selectFrom('candles').selectAll().execute();
    for (const [symbol, m] of marketRows) {
      const own = fills.filter((f) => f.market === symbol);
      expect(Number(m.trade_seq), `${tag}: trade_seq of ${symbol}`).toBe(own.length);
      for (const period of ['1m', '1d']) {
        const cs = candles.filter((c) => c.market === symbol && c.period === period);
        const volume = cs.reduce((sum, c) => sum + readMinor(c.volume), 0n);
        const trades = cs.reduce((sum, c) => sum + Number(c.trades), 0);
        expect({ volume, trades }, `${tag}: ${period} candles of ${symbol}`).toEqual({ volume: own.reduce((sum, f) => sum + readMinor(f.quantity), 0n), trades: own.length });
      }
    }

    // Idempotency: every acknowledged order exists once, with the clientOrderId it was sent with.
    for (const [id, ack] of acked) {
      const row = byId.get(id);
      expect(row, `${tag}: acknowledged order ${id} is not stored`).toBeDefined();
      expect(row!.account_id, tag).toBe(traders[ack.trader]!.account.id);
      expect(row!.client_order_id, `${tag}: ${id}`).toBe(ack.clientOrderId);
    }
    for (const [k, ids] of idsByCid) expect([...ids], `${tag}: clientOrderId ${k} answered with several orders`).toHaveLength(1);
    for (const [k, ids] of createdByCid) expect(ids.size, `${tag}: clientOrderId ${k} created twice`).toBe(1);
    const cidCounts = new Map<string, number>();
    for (const o of orders) if (o.client_order_id !== null) cidCounts.set(`${o.account_id}/${o.client_order_id}`, (cidCounts.get(`${o.account_id}/${o.client_order_id}`) ?? 0) + 1);
    for (const [k, count] of cidCounts) expect(count, `${tag}: clientOrderId ${k} maps to ${count} orders`).toBe(1);
    for (const w of withdrawals) expect(withdrawalRows.some((r) => r.id === w.id), `${tag}: acknowledged withdrawal ${w.id}`).toBe(true);
    for (const [k, ids] of withdrawalsByCid) expect([...ids], `${tag}: clientWithdrawalId ${k}`).toHaveLength(1);
    const wcids = withdrawalRows.filter((w) => w.client_withdrawal_id !== null).map((w) => `${w.account_id}/${w.client_withdrawal_id}`);
    expect(new Set(wcids).size, `${tag}: a clientWithdrawalId maps to two withdrawals`).toBe(wcids.length);

    // Books: every server's live book, the open orders in the store, and a book rebuilt from the
    // store by a server started now agree, level by level.
    const viewer = await sessionFor(a);
    const levels = (book: { bids: { price: string; quantity: string; orders: number }[]; asks: { price: string; quantity: string; orders: number }[] }, m: { base: string; quote: string }) => {
      const bd = decimalsOf.get(m.base)!;
      const qd = decimalsOf.get(m.quote)!;
      const f = (ls: { price: string; quantity: string; orders: number }[]) => ls.map((l) => `${toMinor(l.price, qd)}x${toMinor(l.quantity, bd)}/${l.orders}`);
      return { bids: f(book.bids), asks: f(book.asks) };
    };
    const storeBook = (symbol: string) => {
      const agg = (side: 'buy' | 'sell') => {
        const byPrice = new Map<bigint, { qty: bigint; n: number }>();
        for (const o of orders) {
          if (o.market !== symbol || o.side !== side || !(o.status === 'open' || o.status === 'partially_filled')) continue;
          const p = readMinor(o.price);
          const l = byPrice.get(p) ?? { qty: 0n, n: 0 };
          l.qty += readMinor(o.remaining);
          l.n++;
          byPrice.set(p, l);
        }
        return [...byPrice].sort(([x], [y]) => (side === 'buy' ? (x > y ? -1 : 1) : x < y ? -1 : 1)).map(([p, l]) => `${p}x${l.qty}/${l.n}`);
      };
      return { bids: agg('buy'), asks: agg('sell') };
    };
    const bookOf = async (server: TestServer, symbol: string) => {
      const r = await server.app.inject({ method: 'GET', url: `/api/v1/market/orderbook/${symbol}?depth=100`, headers: viewer.headers });
      expect(r.statusCode, `${tag}: ${r.body}`).toBe(200);
      return levels(r.json(), marketRows.get(symbol)!);
    };
    const active = [...marketRows.values()].filter((m) => m.status === 'active').map((m) => m.symbol);
    const live = new Map<string, ReturnType<typeof storeBook>>();
    for (const symbol of active) {
      const expected = storeBook(symbol);
      live.set(symbol, expected);
      for (const server of servers) expect(await bookOf(server, symbol), `${tag}: live book of ${symbol}`).toEqual(expected);
    }
    let rebuilt: TestServer;
    if (backend === 'scaleout') {
      rebuilt = await start();
      cleanups.push(() => rebuilt.close());
    } else {
      await a.close();
      aClosed = true;
      rebuilt = await start();
      cleanups.push(() => rebuilt.close());
    }
    for (const symbol of active) expect(await bookOf(rebuilt, symbol), `${tag}: rebuilt book of ${symbol}`).toEqual(live.get(symbol));

    const audit = await rebuilt.services.audit.verify();
    expect(audit.firstBroken, tag).toBeUndefined();
    expect(audit.ok, tag).toBe(true);

    // eslint-disable-next-line no-console
    if (process.env.FUZZ_VERBOSE) console.log(backend, tag, { fuzzMs: fuzzed - started, totalMs: Date.now() - started, orders: orders.length, fills: fills.length, withdrawals: withdrawalRows.length, tally: Object.fromEntries([...tally].sort()) });
  });
});
