import type { KyselyPlugin } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { loadConfig, type Config, type TradingConfig } from '../../src/config/index.js';
import { ok } from '../../src/errors/registry.js';
import { ManualClock, type Clock } from '../../src/lib/clock.js';
import type { Role } from '../../src/security/rbac/roles.js';
import { MemoryState } from '../../src/state/memory.js';
import type { SharedState } from '../../src/state/port.js';
import type { Store, StoreOptions } from '../../src/store/db.js';
import { createTrading, type Trading } from '../../src/trading/index.js';
import { SYSTEM_OWNERS } from '../../src/trading/ledger/index.js';
import type { Caller } from '../../src/trading/orders/types.js';
import { gated } from './gate.js';
import { openTestStore } from './stores.js';

/** A trading core on a given store, as one server process would build it. */
export async function tradingOn(
  store: Store,
  options: { clock?: Clock; state?: SharedState; config?: Partial<TradingConfig>; thread?: { config: Config; store: StoreOptions } } = {},
): Promise<Trading & { state: SharedState; clock: Clock }> {
  const clock = options.clock ?? new ManualClock();
  const state = options.state ?? new MemoryState(clock);
  const config = { ...loadConfig({}).trading, ...options.config };
  const trading = await createTrading({ store, state, clock, log: pino({ level: 'silent' }), config, thread: options.thread });
  return Object.assign(trading, { state, clock });
}

/** MOON (6 decimals) and MOON-USDC: tick 0.0001 USDC, lot 0.01 MOON, min order 1 USDC, fees 10/20 bps. */
export async function listMoon(trading: Trading, symbol = 'MOON') {
  const asset = await trading.assets.createAsset({ symbol, name: `${symbol} token`, decimals: 6 }, 'test');
  if (!asset.ok && asset.code !== 'conflict') throw new Error(asset.detail);
  const market = await trading.assets.listMarket({ base: symbol, quote: 'USDC', tickSize: '0.0001', lotSize: '0.01', minNotional: '1', makerFeeBps: 10, takerFeeBps: 20 });
  if (!market.ok) throw new Error(market.detail);
  return market.value;
}

/** Credits an account from the issuance account (minor units). */
export async function fund(trading: Trading, owner: string, asset: string, amount: bigint): Promise<void> {
  const r = await trading.ledger.run(async (l) => {
    const posted = await l.post('test.credit', null, [
      { owner: SYSTEM_OWNERS.issuance, asset, amount: -amount },
      { owner, asset, amount },
    ]);
    return posted.ok ? ok(undefined) : posted;
  });
  if (!r.ok) throw new Error(r.detail);
}

export function callerFor(accountId: string, role: Role = 'trader'): Caller {
  return { accountId, role, actor: { kind: 'session', id: `ses_${accountId}`, accountId } };
}

export const USDC = (whole: number | string) => BigInt(Math.round(Number(whole) * 1e6));
export const MOON = USDC;

/**
 * Two scale-out processes' trading cores on one PostgreSQL schema (and one shared state), for race
 * tests: `a` runs its transactions through `plugin` (a gate), `b` does not. Registers its own
 * beforeAll / afterAll; `setup` runs on `a` once both exist (list markets there).
 */
export function twoProcessesOnPostgres(plugin: KyselyPlugin, clock: Clock, setup: (a: Trading & { state: SharedState; clock: Clock }) => Promise<void>) {
  const ctx = {} as { a: Awaited<ReturnType<typeof tradingOn>>; b: Awaited<ReturnType<typeof tradingOn>> };
  let storeA: Store & { schema?: string };
  let storeB: Store;
  beforeAll(async () => {
    storeA = await openTestStore('postgres');
    storeB = await openTestStore('postgres', storeA.schema);
    ctx.a = await tradingOn(gated(storeA, plugin), { clock });
    await setup(ctx.a);
    ctx.b = await tradingOn(storeB, { clock, state: ctx.a.state });
  });
  afterAll(async () => {
    await ctx.a?.close();
    await ctx.b?.close();
    await storeB?.close();
    await storeA?.close();
  });
  return ctx;
}
