import type { Store } from '../../store/db.js';
import { FILL_ID_PREFIX, fillFromRow, historyKey, orderFromRow } from './records.js';
import type { FillRecord, OrderRecord } from './types.js';

export interface Page {
  limit: number;
  /** Return items older than this id (ids sort by creation time). */
  before?: string | undefined;
}

export type OrderFilter = Page & { market?: string | undefined; status?: 'open' | 'closed' | 'all' | undefined };
export type FillFilter = Page & { market?: string | undefined; orderId?: string | undefined };

/** A fill from one account's side of it. */
export interface AccountFill {
  fill: FillRecord;
  orderId: string;
  side: 'buy' | 'sell';
  liquidity: 'maker' | 'taker';
  fee: bigint;
}

/** An account's orders (`o`) through its history (`h`), newest first by `h.sort_key`: one index range. */
export function accountOrders(store: Store, accountId: string) {
  return store.db.selectFrom('account_history as h').innerJoin('orders as o', 'o.id', 'h.id').where('h.account_id', '=', accountId).where('h.kind', '=', 'order');
}

/** Read-only order, fill and trade history straight from the store. */
export class OrderQueries {
  constructor(private readonly store: Store) {}

  async order(accountId: string, id: string): Promise<OrderRecord | undefined> {
    const row = await this.store.db.selectFrom('orders').selectAll().where('id', '=', id).where('account_id', '=', accountId).executeTakeFirst();
    return row ? orderFromRow(row) : undefined;
  }

  /** An account's orders, newest first, through `account_history` (one index range per account). */
  async orders(accountId: string, filter: OrderFilter): Promise<OrderRecord[]> {
    return (await this.ordersQuery(accountId, filter).execute()).map(orderFromRow);
  }

  /** The query of `orders` (its plan is tested). */
  ordersQuery(accountId: string, filter: OrderFilter) {
    let q = accountOrders(this.store, accountId).selectAll('o');
    if (filter.market) q = q.where('o.market', '=', filter.market);
    if (filter.status === 'open') q = q.where('o.status', 'in', ['open', 'partially_filled']);
    if (filter.status === 'closed') q = q.where('o.status', 'in', ['filled', 'cancelled', 'expired']);
    if (filter.before) q = q.where('h.sort_key', '<', historyKey(filter.before));
    return q.orderBy('h.sort_key', 'desc').limit(filter.limit);
  }

  async fillsOfOrder(orderId: string): Promise<FillRecord[]> {
    const rows = await this.store.db
      .selectFrom('fills')
      .selectAll()
      .where((eb) => eb.or([eb('taker_order_id', '=', orderId), eb('maker_order_id', '=', orderId)]))
      .orderBy('trade_seq')
      .execute();
    return rows.map(fillFromRow);
  }

  /** An account's fills, newest first, through `account_history` (one index range per account). */
  async accountFills(accountId: string, filter: FillFilter): Promise<AccountFill[]> {
    const rows = await this.accountFillsQuery(accountId, filter).execute();
    return rows.map((r) => {
      const fill = fillFromRow(r);
      const taker = fill.takerAccountId === accountId;
      const side = taker ? fill.takerSide : fill.takerSide === 'buy' ? 'sell' : 'buy';
      return { fill, orderId: taker ? fill.takerOrderId : fill.makerOrderId, side, liquidity: taker ? 'taker' : 'maker', fee: taker ? fill.takerFee : fill.makerFee };
    });
  }

  /**
   * The query of `accountFills` (its plans are tested). With `orderId`, the fills are found through
   * the fills' order-id indexes, where the account is that order's side of the fill (the account
   * history would be the whole account's range); a fill's id is `fil_` + its history key, so it
   * sorts and pages the same way.
   */
  accountFillsQuery(accountId: string, filter: FillFilter) {
    if (filter.orderId) {
      const id = filter.orderId;
      let q = this.store.db
        .selectFrom('fills as f')
        .selectAll('f')
        .where((eb) =>
          eb.or([
            eb.and([eb('f.taker_order_id', '=', id), eb('f.taker_account_id', '=', accountId)]),
            eb.and([eb('f.maker_order_id', '=', id), eb('f.maker_account_id', '=', accountId)]),
          ]),
        );
      if (filter.market) q = q.where('f.market', '=', filter.market);
      if (filter.before) q = q.where('f.id', '<', `${FILL_ID_PREFIX}${historyKey(filter.before)}`);
      return q.orderBy('f.id', 'desc').limit(filter.limit);
    }
    let q = this.store.db
      .selectFrom('account_history as h')
      .innerJoin('fills as f', 'f.id', 'h.id')
      .selectAll('f')
      .where('h.account_id', '=', accountId)
      .where('h.kind', 'in', ['taker', 'maker']);
    if (filter.market) q = q.where('f.market', '=', filter.market);
    if (filter.before) q = q.where('h.sort_key', '<', historyKey(filter.before));
    return q.orderBy('h.sort_key', 'desc').limit(filter.limit);
  }

  /** Public trades of a market, newest first. */
  async trades(market: string, limit: number): Promise<FillRecord[]> {
    const rows = await this.store.db.selectFrom('fills').selectAll().where('market', '=', market).orderBy('trade_seq', 'desc').limit(limit).execute();
    return rows.map(fillFromRow);
  }
}
