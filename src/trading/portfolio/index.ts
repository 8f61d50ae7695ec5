import type { Transaction } from 'kysely';
import type { Store } from '../../store/db.js';
import type { Database } from '../../store/schema.js';
import { upsertRows } from '../upsert.js';
import { applyOutflow } from './average-cost.js';
import { USDC, type Assets } from '../assets/index.js';
import type { BalanceRow, Ledger } from '../ledger/index.js';
import { pow10, readMinor } from '../money.js';

export { applyBuy, applyOutflow, applySell, type CostState } from './average-cost.js';

export interface Position {
  asset: string;
  decimals: number;
  /** Holding: available + held (base minor units). */
  quantity: bigint;
  available: bigint;
  held: bigint;
  /** USDC minor units the holding cost, fees included. */
  costBasis: bigint;
  /** USDC minor units per whole unit (null without a holding). */
  averageCost: bigint | null;
  /** Last trade price in ASSET-USDC (null when it never traded). */
  lastPrice: bigint | null;
  /** Holding at the last price, USDC minor units (null when unpriced). */
  value: bigint | null;
  unrealizedPnl: bigint | null;
  realizedPnl: bigint;
}

export interface Portfolio {
  /** USDC available + held. */
  cash: bigint;
  positionsValue: bigint;
  /** cash + priced positions, USDC minor units. */
  totalValue: bigint;
  realizedPnl: bigint;
  unrealizedPnl: bigint;
  /** Assets held that have no last price (counted at zero). */
  unpriced: string[];
  positions: Position[];
}

/** Positions (average cost, realized and unrealized PnL) and portfolio value in USDC. */
export class Portfolios {
  constructor(private readonly deps: { store: Store; ledger: Ledger; assets: Assets }) {}

  async positions(accountId: string): Promise<Position[]> {
    return this.positionsOf(await this.holdings(accountId));
  }

  /**
   * The account's balances and what its holdings cost, in one statement, so one snapshot: read
   * apart, a trade committing in between would pair one side's quantity with the other's cost
   * (or cash), and the average cost, PnL and portfolio value would be off by that trade.
   */
  private async holdings(accountId: string): Promise<{ balances: BalanceRow[]; costs: Map<string, { cost: bigint; realized: bigint }> }> {
    const db = this.deps.store.db;
    const rows = await db
      .selectFrom('balances')
      .select((eb) => [eb.val('balance').as('kind'), 'asset', 'available', 'held'])
      .where('owner', '=', accountId)
      .unionAll(
        db
          .selectFrom('positions')
          .select((eb) => [eb.val('position').as('kind'), 'asset', eb.ref('cost_basis').as('available'), eb.ref('realized_pnl').as('held')])
          .where('account_id', '=', accountId),
      )
      .execute();
    const balances: BalanceRow[] = [];
    const costs = new Map<string, { cost: bigint; realized: bigint }>();
    for (const r of rows) {
      if (r.kind === 'balance') balances.push({ asset: r.asset, available: readMinor(r.available), held: readMinor(r.held) });
      else costs.set(r.asset, { cost: readMinor(r.available), realized: readMinor(r.held) });
    }
    balances.sort((a, b) => (a.asset < b.asset ? -1 : a.asset > b.asset ? 1 : 0));
    return { balances, costs };
  }

  private async positionsOf({ balances, costs: costByAsset }: { balances: readonly BalanceRow[]; costs: Map<string, { cost: bigint; realized: bigint }> }): Promise<Position[]> {
    const assets = new Set([...balances.map((b) => b.asset), ...costByAsset.keys()]);
    assets.delete(USDC);
    const out: Position[] = [];
    for (const symbol of [...assets].sort()) {
      const asset = await this.deps.assets.asset(symbol);
      if (!asset) continue;
      const b = balances.find((x) => x.asset === symbol) ?? { available: 0n, held: 0n };
      const c = costByAsset.get(symbol) ?? { cost: 0n, realized: 0n };
      const quantity = b.available + b.held;
      if (quantity === 0n && c.realized === 0n) continue;
      const market = await this.deps.assets.market(`${symbol}-${USDC}`, { fresh: true });
      const lastPrice = market?.lastPrice ?? null;
      const value = lastPrice === null ? null : (lastPrice * quantity) / pow10(asset.decimals);
      out.push({
        asset: symbol,
        decimals: asset.decimals,
        quantity,
        available: b.available,
        held: b.held,
        costBasis: c.cost,
        averageCost: quantity > 0n ? (c.cost * pow10(asset.decimals)) / quantity : null,
        lastPrice,
        value,
        unrealizedPnl: value === null ? null : value - c.cost,
        realizedPnl: c.realized,
      });
    }
    return out;
  }

  async portfolio(accountId: string): Promise<Portfolio> {
    // One reading for the cash and the positions both (see holdings).
    const holdings = await this.holdings(accountId);
    const positions = await this.positionsOf(holdings);
    const balances = holdings.balances;
    const usdc = balances.find((b) => b.asset === USDC);
    const cash = usdc ? usdc.available + usdc.held : 0n;
    let positionsValue = 0n;
    let realized = 0n;
    let unrealized = 0n;
    const unpriced: string[] = [];
    for (const p of positions) {
      realized += p.realizedPnl;
      if (p.value === null) {
        if (p.quantity > 0n) unpriced.push(p.asset);
        continue;
      }
      positionsValue += p.value;
      unrealized += p.unrealizedPnl ?? 0n;
    }
    return { cash, positionsValue, totalValue: cash + positionsValue, realizedPnl: realized, unrealizedPnl: unrealized, unpriced, positions };
  }
}

/**
 * Removes the cost of `quantity` units leaving a holding without a sale (a withdrawal being sent),
 * inside the caller's transaction, so the average cost of what remains is unchanged. Call it with
 * the holding (available + held) as it was before the outflow. Throws ConcurrentUpdateError when
 * an order transaction changed the position meanwhile (retry the transaction, as Ledger.run does).
 *
 * @example
 * await ledger.run(async (l, trx) => {
 *   const before = await l.balance(accountId, 'MOON');
 *   await l.post('withdrawal.sent', id, [...]);
 *   await recordOutflow(trx, accountId, 'MOON', amount, before.available + before.held);
 *   return ok(undefined);
 * });
 */
export async function recordOutflow(trx: Transaction<Database>, accountId: string, asset: string, quantity: bigint, holdingBefore: bigint): Promise<void> {
  const row = await trx.selectFrom('positions').selectAll().where('account_id', '=', accountId).where('asset', '=', asset).executeTakeFirst();
  if (!row) return;
  const state = { cost: readMinor(row.cost_basis), realized: readMinor(row.realized_pnl) };
  applyOutflow(state, quantity, holdingBefore);
  await upsertRows(
    trx,
    'positions',
    ['account_id', 'asset'],
    [{ account_id: accountId, asset, cost_basis: state.cost.toString(), realized_pnl: state.realized.toString(), updated_at: Number(row.updated_at), version: Number(row.version) + 1 }],
    ['cost_basis', 'realized_pnl', 'updated_at', 'version'],
    { versioned: true },
  );
}
