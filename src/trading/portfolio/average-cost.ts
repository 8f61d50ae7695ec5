/**
 * Average-cost position accounting, in quote (USDC) minor units. The quantity of a position is
 * always the ledger holding (available + held); this tracks only what that holding cost and what
 * selling has realized. Fees count: a buy's cost includes its fee, a sale's proceeds are net of it.
 */
export interface CostState {
  /** What the current holding cost. */
  cost: bigint;
  /** Σ (proceeds − cost of what was sold). */
  realized: bigint;
}

/** A buy of any quantity adds what it paid. */
export function applyBuy(state: CostState, paid: bigint): void {
  state.cost += paid;
}

/**
 * A sale of `quantity` out of `holdingBefore` removes that share of the cost (rounded down; all of
 * it when the whole holding goes) and realizes proceeds minus that cost.
 */
export function applySell(state: CostState, quantity: bigint, proceeds: bigint, holdingBefore: bigint): void {
  const removed = quantity >= holdingBefore || holdingBefore <= 0n ? state.cost : (state.cost * quantity) / holdingBefore;
  state.cost -= removed;
  state.realized += proceeds - removed;
}

/**
 * An outflow that is not a sale (a withdrawal) removes its share of the cost without realizing
 * anything. Inflows that are not purchases (faucet, token supply) need no call: they arrive at
 * zero cost and lower the average by themselves.
 */
export function applyOutflow(state: CostState, quantity: bigint, holdingBefore: bigint): void {
  const removed = quantity >= holdingBefore || holdingBefore <= 0n ? state.cost : (state.cost * quantity) / holdingBefore;
  state.cost -= removed;
}
