import type { SharedState } from '../state/port.js';
import { MARKET_SYMBOL } from './assets/index.js';

/** Every halt key starts with this (the order thread watches writes under it: orders/thread.ts). */
export const HALT_KEY_PREFIX = 'trading:halt:';

/**
 * The emergency-halt switch, kept in shared state so that every server process sees it at once.
 * A halt is global or per market; while one is set, new orders are refused with 503
 * `trading_halted` (cancels still go through: they only reduce risk). The order service checks
 * before queueing an order and again when its batch begins, so orders queued before the halt was
 * set are refused too (a batch already committing completes). The admin and automated
 * controls that set these keys are built elsewhere; these helpers are their whole interface.
 */
export const haltKeys = {
  global: `${HALT_KEY_PREFIX}global`,
  market: (market: string) => `${HALT_KEY_PREFIX}market:${market}`,
} as const;

export interface HaltRecord {
  reason: string;
  by: string;
  at: number;
}

export interface HaltStatus {
  halted: boolean;
  scope?: 'global' | 'market';
  record?: HaltRecord;
}

function parse(value: string): HaltRecord {
  try {
    const v = JSON.parse(value) as Partial<HaltRecord>;
    return { reason: String(v.reason ?? 'halted'), by: String(v.by ?? 'unknown'), at: Number(v.at ?? 0) };
  } catch {
    return { reason: 'halted', by: 'unknown', at: 0 };
  }
}

/**
 * Whether trading in `market` is halted (globally or for that market). One round trip. A shared
 * state outage rejects (StateUnavailableError → 503): trading fails closed.
 */
export async function haltStatus(state: SharedState, market: string): Promise<HaltStatus> {
  return (await haltsOf(state, [market])).get(market)!;
}

/**
 * The status of each of `markets` (global halt included), in one round trip. A shared-state
 * outage rejects (fail closed).
 */
export async function haltsOf(state: Pick<SharedState, 'getMany'>, markets: readonly string[]): Promise<Map<string, HaltStatus>> {
  const out = new Map<string, HaltStatus>();
  const [global, ...perMarket] = await state.getMany([haltKeys.global, ...markets.map((m) => haltKeys.market(m))]);
  markets.forEach((m, i) => out.set(m, haltFrom(global ?? null, perMarket[i] ?? null)));
  return out;
}

/** The status given the values of the global and the market's halt keys (null: not set). */
export function haltFrom(global: string | null, perMarket: string | null): HaltStatus {
  if (global !== null) return { halted: true, scope: 'global', record: parse(global) };
  if (perMarket !== null) return { halted: true, scope: 'market', record: parse(perMarket) };
  return { halted: false };
}

/**
 * Sets a halt (no expiry unless `ttlMs`). `market` undefined halts everything. Throws rather than
 * write a halt that would not hold: a market symbol no market can have (`moon-usdc` is not the key
 * `MOON-USDC` is read under), or an expiry that is not a positive finite number of ms (0 would
 * lift it at once; NaN would never expire in process but fail on Redis).
 */
export async function setHalt(state: SharedState, input: { market?: string; reason: string; by: string; at: number; ttlMs?: number }): Promise<void> {
  if (input.market !== undefined && !MARKET_SYMBOL.test(input.market)) throw new Error(`setHalt: market must be a market symbol such as MOON-USDC`);
  if (input.ttlMs !== undefined && !(Number.isFinite(input.ttlMs) && input.ttlMs > 0)) throw new Error('setHalt: ttlMs must be a positive number of milliseconds (omit it for no expiry)');
  const key = input.market === undefined ? haltKeys.global : haltKeys.market(input.market);
  await state.set(key, JSON.stringify({ reason: input.reason, by: input.by, at: input.at }), input.ttlMs);
}

export async function clearHalt(state: SharedState, market?: string): Promise<void> {
  await state.del(market === undefined ? haltKeys.global : haltKeys.market(market));
}
