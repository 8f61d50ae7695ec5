import type { Line } from '../ledger/ledger-tx.js';
import type { BookTerms, Fill, MatchResult, Side } from '../matching/types.js';

/**
 * How trades settle in the ledger. Pure functions shared by the order service and the property
 * tests, so the tests check the very rules the service posts.
 *
 * Fees are charged in the quote asset: the buyer pays notional + its fee, the seller receives
 * notional − its fee, the fee account gets both fees. A taker pays from its available balance; a
 * maker pays from the hold of its resting order. A resting buy holds notional at its limit price
 * plus the larger of the two fees on it; fees round down, and floor(a·f) + floor(b·f) ≤
 * floor((a+b)·f), so fills can never consume more than the hold.
 */
export interface SettlementAssets {
  base: string;
  quote: string;
  feeOwner: string;
}

const BPS = 10_000n;

export function maxFeeBps(terms: BookTerms): bigint {
  return terms.makerFeeBps > terms.takerFeeBps ? terms.makerFeeBps : terms.takerFeeBps;
}

/** The journal lines of one fill (one balanced entry). */
export function fillLines(fill: Fill, assets: SettlementAssets): Line[] {
  const { base, quote, feeOwner } = assets;
  const takerBuys = fill.takerSide === 'buy';
  const buyer = takerBuys ? fill.takerAccountId : fill.makerAccountId;
  const seller = takerBuys ? fill.makerAccountId : fill.takerAccountId;
  const buyerFee = takerBuys ? fill.takerFee : fill.makerFee;
  const sellerFee = takerBuys ? fill.makerFee : fill.takerFee;
  // The maker's side comes out of its order's hold (hold id = order id); the taker's out of available.
  const makerHold = fill.makerOrderId;
  const lines: Line[] = [
    { owner: buyer, asset: quote, amount: -(fill.notional + buyerFee), ...(takerBuys ? {} : { hold: makerHold }) },
    { owner: seller, asset: quote, amount: fill.notional - sellerFee },
    { owner: seller, asset: base, amount: -fill.quantity, ...(takerBuys ? { hold: makerHold } : {}) },
    { owner: buyer, asset: base, amount: fill.quantity },
  ];
  if (buyerFee + sellerFee > 0n) lines.push({ owner: feeOwner, asset: quote, amount: buyerFee + sellerFee });
  return lines;
}

/** What a resting order holds: the base quantity for a sell, notional + worst-case fee for a buy. */
export function restingHold(side: Side, price: bigint, remaining: bigint, terms: BookTerms): bigint {
  if (side === 'sell') return remaining;
  const notional = (price * remaining) / terms.baseScale;
  return notional + (notional * maxFeeBps(terms)) / BPS;
}

/**
 * What the incoming order takes from the account's available balance if accepted: what its fills
 * pay plus what its remainder will hold. Buys pay in the quote asset, sells in the base asset.
 */
export function takerRequirement(result: MatchResult, terms: BookTerms): { side: Side; amount: bigint } {
  const o = result.order;
  const rest = result.rests ? restingHold(o.side, o.price!, result.remaining, terms) : 0n;
  if (o.side === 'buy') return { side: 'buy', amount: result.notional + result.takerFees + rest };
  return { side: 'sell', amount: result.filled + rest };
}

/**
 * Notional the order commits the account to (daily trading limit): what it trades now plus what
 * its remainder may trade at its limit price later.
 */
export function committedNotional(result: MatchResult, terms: BookTerms): bigint {
  const o = result.order;
  return result.notional + (result.rests ? (o.price! * result.remaining) / terms.baseScale : 0n);
}
