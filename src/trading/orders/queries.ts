import type { Store } from '../../store/db.js';
import { fillFromRow, orderFromRow } from './records.js';
import type { FillRecord, OrderRecord } from './types.js';

export interface Page {
  limit: number;
  /** Return items older than this id (ids sort by creation time). */
  before?: string | undefined;
}

/** A fill from one account's side of it. */
export interface AccountFill {
  fill: FillRecord;
  orderId: string;
  side: 'buy' | 'sell';
  liquidity: 'maker' | 'taker';
  fee: bigint;
}

/** Read-only order, fill and trade history straight from the store. */
export class OrderQueries {
  constructor(private readonly store: Store) {}

  async order(accountId: string, id: string): Promise<OrderRecord | undefined> {
    const row = await this.store.db.selectFrom('orders').selectAll().where('id', '=', id).where('account_id', '=', accountId).executeTakeFirst();
    return row ? orderFromRow(row) : undefined;
  }

  async orders(accountId: string, filter: Page & { market?: string | undefined; status?: 'open' | 'closed' | 'all' | undefined }): Promise<OrderRecord[]> {
    let q = this.store.db.selectFrom('orders').selectAll().where('account_id', '=', accountId);
    if (filter.market) q = q.where('market', '=', filter.market);
    if (filter.status === 'open') q = q.where('status', 'in', ['open', 'partially_filled']);
    if (filter.status === 'closed') q = q.where('status', 'in', ['filled', 'cancelled', 'expired']);
    if (filter.before) q = q.where('id', '<', filter.before);
    const rows = await q.orderBy('id', 'desc').limit(filter.limit).execute();
    return rows.map(orderFromRow);
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

  async accountFills(accountId: string, filter: Page & { market?: string | undefined; orderId?: string | undefined }): Promise<AccountFill[]> {
    let q = this.store.db.selectFrom('fills').selectAll().where((eb) => eb.or([eb('taker_account_id', '=', accountId), eb('maker_account_id', '=', accountId)]));
    if (filter.market) q = q.where('market', '=', filter.market);
    if (filter.orderId) {
      const id = filter.orderId;
      q = q.where((eb) => eb.or([eb('taker_order_id', '=', id), eb('maker_order_id', '=', id)]));
    }
    if (filter.before) q = q.where('id', '<', filter.before);
    const rows = await q.orderBy('id', 'desc').limit(filter.limit).execute();
    return rows.map((r) => {
      const fill = fillFromRow(r);
      const taker = fill.takerAccountId === accountId;
      const side = taker ? fill.takerSide : fill.takerSide === 'buy' ? 'sell' : 'buy';
      return { fill, orderId: taker ? fill.takerOrderId : fill.makerOrderId, side, liquidity: taker ? 'taker' : 'maker', fee: taker ? fill.takerFee : fill.makerFee };
    });
  }

  /** Public trades of a market, newest first. */
  async trades(market: string, limit: number): Promise<FillRecord[]> {
    const rows = await this.store.db.selectFrom('fills').selectAll().where('market', '=', market).orderBy('trade_seq', 'desc').limit(limit).execute();
    return rows.map(fillFromRow);
  }
}
