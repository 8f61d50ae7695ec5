import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import { lockAdminTarget, lockStillAdmin, NO_LONGER_ADMIN, type AccountRef } from '../../accounts/accounts.js';
import type { AuditLog } from '../../audit/audit-log.js';
import type { AuditEvent } from '../../audit/events.js';
import type { WithdrawalsConfig } from '../../config/index.js';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { displayParagraphs, displayText } from '../../lib/text.js';
import type { Store } from '../../store/db.js';
import type { Database, WithdrawalsTable } from '../../store/schema.js';
import { USDC, USDC_DECIMALS, type Assets } from '../assets/index.js';
import { periodStart } from '../marketdata/candles.js';
import { SYSTEM_OWNERS, type Ledger } from '../ledger/index.js';
import { formatAmount, parseAmount, pow10, readMinor } from '../money.js';
import type { Actor } from '../orders/types.js';
import { recordOutflow } from '../portfolio/index.js';
import { lockAccount, type Tokens } from '../tokens/index.js';
import { isChain, normalizeAddress, type Chain } from './addresses.js';
import type { ChainAdapter } from './chain-adapter.js';
import { CLIENT_ORDER_ID } from '../orders/types.js';

export { CHAINS, isChain, normalizeAddress, type Chain } from './addresses.js';
export { SandboxChainAdapter, UnconfiguredChainAdapter, type ChainAdapter, type OutgoingTransfer } from './chain-adapter.js';

const DAY = 86_400_000;

/** A session must have signed in this recently (seconds) to withdraw or change where money may go. */
export const STEP_UP_MAX_AGE_SEC = 300;

/**
 * Most addresses one account's book holds. Each is a row, an audit record, and part of every read
 * of the book (which lists them all): without a bound an account (any wallet can sign in) could
 * grow them at its request rate for ever.
 */
export const MAX_SAVED_ADDRESSES = 100;

export const WITHDRAWAL_STATUSES = ['pending', 'approved', 'sent', 'rejected', 'cancelled'] as const;
export type WithdrawalStatus = (typeof WITHDRAWAL_STATUSES)[number];
/** Statuses that count against the rolling-24 h limit (funds held or gone). */
/** Withdrawals whose funds are held and may still leave. */
const UNDECIDED: WithdrawalStatus[] = ['pending', 'approved'];
export const TIERS = [0, 1, 2] as const;
export type Tier = (typeof TIERS)[number];

export interface Withdrawal {
  id: string;
  accountId: string;
  asset: string;
  decimals: number;
  amount: bigint;
  usdcValue: bigint;
  chain: Chain;
  address: string;
  status: WithdrawalStatus;
  txHash: string | null;
  reason: string | null;
  /** The client's id for the request (idempotency), or null. */
  clientWithdrawalId: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface WithdrawalSettings {
  tier: Tier;
  /** Whether only saved addresses past their hold may be used now. */
  addressBook: boolean;
  /** When a requested switch-off takes effect (null when none is pending). */
  addressBookOffAt: number | null;
}

export interface LimitStatus {
  tier: Tier;
  limit: bigint;
  used: bigint;
  remaining: bigint;
  autoApproveUpTo: bigint;
}

export interface SavedAddress {
  id: string;
  chain: Chain;
  address: string;
  label: string | null;
  usableAt: number;
  createdAt: number;
}

function via(actor: Actor) {
  return actor.kind === 'apiKey' ? { via: 'apiKey', keyId: actor.id } : { via: actor.kind, sessionId: actor.id };
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

/**
 * Withdrawals (issue 7). A request holds the funds in the ledger at once; it is approved
 * automatically while the withdrawals approved that way in the rolling 24 h, this one included, are
 * worth at most the auto-approval threshold, else it waits for an admin.
 * An approved withdrawal goes to the chain adapter; once it answers with a transaction hash the
 * held funds leave to `sys:external` and the position's cost shrinks accordingly (recordOutflow).
 * Rejection and cancellation release the hold.
 *
 *   pending ──approve──▶ approved ──adapter──▶ sent
 *      │ └──reject──▶ rejected
 *      └──cancel (owner)──▶ cancelled
 *
 * Limits: each account's verification tier (0, 1, 2; admins set it, default 0) caps the USDC value
 * withdrawn over a rolling 24 h (pending, approved and sent withdrawals count). Non-USDC assets are
 * valued at their last trade price in ASSET-USDC, rounded up; an asset that never traded has no
 * value we can trust, so it cannot be withdrawn (fail closed: `withdrawal_limit_exceeded`).
 *
 * Every check and write of a request runs in one transaction (serialized per account), so racing
 * requests neither overdraw the balance nor the limit; every refusal changes nothing; every state
 * change is audited inside the transaction that makes it.
 */
/**
 * How long a dispatch claim stands before an admin's retry may take it again: far longer than a
 * chain adapter's send, so only a claim whose process died in the middle is retaken.
 */
export const DISPATCH_CLAIM_STALE_MS = 10 * 60_000;

export class Withdrawals {
  private readonly limits: [bigint, bigint, bigint];
  private readonly autoApprove: bigint;

  constructor(
    private readonly deps: { store: Store; clock: Clock; ledger: Ledger; assets: Assets; tokens: Tokens; audit: AuditLog; adapter: ChainAdapter; config: WithdrawalsConfig; log: Logger },
  ) {
    const usdc = (v: string) => {
      const r = parseAmount(v, USDC_DECIMALS, 'limit', { positive: false });
      if (!r.ok) throw new Error(r.detail);
      return r.value;
    };
    this.limits = deps.config.tierLimitsUsdc.map(usdc) as [bigint, bigint, bigint];
    this.autoApprove = usdc(deps.config.autoApproveUsdc);
  }

  tierLimit(tier: Tier): bigint {
    return this.limits[tier];
  }

  async settings(accountId: string, db: Transaction<Database> | Store['db'], now: number): Promise<WithdrawalSettings> {
    const row = await db.selectFrom('withdrawal_settings').selectAll().where('account_id', '=', accountId).executeTakeFirst();
    if (!row) return { tier: 0, addressBook: false, addressBookOffAt: null };
    const offAt = row.address_book_off_at === null ? null : Number(row.address_book_off_at);
    const on = Number(row.address_book) === 1 && (offAt === null || now < offAt);
    return { tier: Number(row.tier) as Tier, addressBook: on, addressBookOffAt: on ? offAt : null };
  }

  /**
   * What counts against the rolling 24 h limit: every pending or approved withdrawal, however old
   * (its funds have not left, and will once it is decided or sent), and every one sent in the last
   * 24 h. Counting them by request time would let a withdrawal kept pending for a day stop counting,
   * then leave together with the next day's.
   */
  private async used(trx: Transaction<Database> | Store['db'], accountId: string, now: number): Promise<{ total: bigint; auto: bigint }> {
    const rows = await trx
      .selectFrom('withdrawals')
      .select(['usdc_value', 'decided_by'])
      .where('account_id', '=', accountId)
      .where((eb) => eb.or([eb('status', 'in', UNDECIDED), eb.and([eb('status', '=', 'sent'), eb('updated_at', '>', now - DAY)])]))
      .execute();
    let total = 0n;
    let auto = 0n;
    for (const r of rows) {
      const v = readMinor(r.usdc_value);
      total += v;
      if (r.decided_by === 'auto') auto += v;
    }
    return { total, auto };
  }

  /** `db`: a transaction, to read what it wrote (a tier change answers from its own transaction). */
  async limitStatus(accountId: string, now: number, db: Kysely<Database> = this.deps.store.db): Promise<LimitStatus> {
    const s = await this.settings(accountId, db, now);
    const { total: used } = await this.used(db, accountId, now);
    const limit = this.limits[s.tier];
    return { tier: s.tier, limit, used, remaining: limit > used ? limit - used : 0n, autoApproveUpTo: this.autoApprove };
  }

  /**
   * The USDC value of an amount (rounded up) at the highest of the last trade price, every trade
   * price of the last 24 h (the hourly candles' highs) and the price in force when those 24 h began
   * (the close of the last hourly candle before them), or null when the asset has no last price.
   * The last price alone is whatever the latest trade said: two accounts of one person trading a lot
   * at a tiny price just before a withdrawal would make any amount fit the tier's limit; so would
   * such a trade in a market that had not traded for a day, without the price in force before it.
   * Trading the price up only makes the limit tighter.
   */
  private async valueOf(trx: Transaction<Database>, asset: string, decimals: number, amount: bigint, now: number): Promise<bigint | null> {
    if (asset === USDC) return amount;
    const market = `${asset}-${USDC}`;
    const m = await trx.selectFrom('markets').select(['last_price', 'quote']).where('symbol', '=', market).executeTakeFirst();
    if (!m || m.last_price === null) return null;
    const since = periodStart(now - DAY, '1h');
    const hours = await trx.selectFrom('candles').select('high').where('market', '=', market).where('period', '=', '1h').where('start', '>=', since).execute();
    const before = await trx.selectFrom('candles').select('close').where('market', '=', market).where('period', '=', '1h').where('start', '<', since).orderBy('start', 'desc').limit(1).executeTakeFirst();
    let price = readMinor(m.last_price);
    for (const p of [...hours.map((c) => readMinor(c.high)), ...(before ? [readMinor(before.close)] : [])]) {
      if (p > price) price = p;
    }
    return ceilDiv(price * amount, pow10(decimals));
  }

  /**
   * Requests a withdrawal, or answers the original when `clientWithdrawalId` repeats one. With
   * `repeatOnly` (a caller whose sign-in is too old to start one), only the repeat is answered:
   * anything that would start a withdrawal is `step_up_required`, and nothing changes.
   */
  async request(
    accountId: string,
    actor: Actor,
    input: { asset: string; amount: string; address: string; clientWithdrawalId?: string },
    options: { repeatOnly?: boolean } = {},
  ): Promise<Result<Withdrawal & { replayed: boolean }, 'validation_failed' | 'insufficient_funds' | 'withdrawal_limit_exceeded' | 'address_not_allowed' | 'conflict' | 'step_up_required'>> {
    const { ledger, assets, tokens, audit, store } = this.deps;
    const clientId = input.clientWithdrawalId ?? null;
    if (clientId !== null && !CLIENT_ORDER_ID.test(clientId)) return fail('validation_failed', 'clientWithdrawalId must be 1–64 letters, digits or _ . : -');
    const stepUp = () => fail('step_up_required', `Sign in again: a new withdrawal needs a sign-in within the last ${STEP_UP_MAX_AGE_SEC / 60} minutes`);
    if (options.repeatOnly && clientId === null) return stepUp();
    const asset = await assets.asset(input.asset);
    if (!asset) return fail('validation_failed', 'asset: no such asset');
    const amount = parseAmount(input.amount, asset.decimals, 'amount');
    if (!amount.ok) return amount;
    const chain = await tokens.chainOf(asset.symbol);
    const address = normalizeAddress(chain, input.address);
    if (!address.ok) return address;

    const result = await ledger.run<WithdrawalsTable & { replayed?: true }, 'insufficient_funds' | 'withdrawal_limit_exceeded' | 'address_not_allowed' | 'conflict' | 'step_up_required'>(async (l, trx) => {
      const now = l.now;
      await lockAccount(store, trx, accountId);
      // A retry (the same clientWithdrawalId) gets the original back, whatever became of it since;
      // the id naming another request is a conflict, never a second withdrawal. Checked under the
      // account's lock, before the limits (which the original already counts against).
      if (clientId !== null) {
        const original = await trx.selectFrom('withdrawals').selectAll().where('account_id', '=', accountId).where('client_withdrawal_id', '=', clientId).executeTakeFirst();
        if (original) {
          if (original.asset !== asset.symbol || readMinor(original.amount) !== amount.value || original.address !== address.value) {
            return fail('conflict', `clientWithdrawalId ${clientId} already names another withdrawal (${original.id})`, { withdrawalId: original.id });
          }
          return ok({ ...original, replayed: true as const });
        }
      }
      if (options.repeatOnly) return stepUp();
      const settings = await this.settings(accountId, trx, now);
      if (settings.addressBook) {
        const saved = await trx.selectFrom('withdrawal_addresses').select('usable_at').where('account_id', '=', accountId).where('chain', '=', chain).where('address', '=', address.value).executeTakeFirst();
        if (!saved) return fail('address_not_allowed', 'The address book is on and this address is not in it');
        if (Number(saved.usable_at) > now) return fail('address_not_allowed', 'This address is still in its hold period', { usableAt: Number(saved.usable_at) });
      }
      const value = await this.valueOf(trx, asset.symbol, asset.decimals, amount.value, now);
      const limit = this.limits[settings.tier];
      const { total: used, auto } = await this.used(trx, accountId, now);
      const remaining = limit > used ? limit - used : 0n;
      // API.md: every withdrawal_limit_exceeded carries tier, limit and remaining (USDC), this one too.
      const standing = { tier: settings.tier, limit: formatAmount(limit, USDC_DECIMALS), remaining: formatAmount(remaining, USDC_DECIMALS) };
      if (value === null) return fail('withdrawal_limit_exceeded', `${asset.symbol} has no market price yet, so it cannot be valued against the withdrawal limit`, standing);
      if (used + value > limit) {
        return fail('withdrawal_limit_exceeded', `Tier ${settings.tier} allows ${formatAmount(limit, USDC_DECIMALS)} USDC per 24 h; ${formatAmount(remaining, USDC_DECIMALS)} USDC is left`, standing);
      }
      const id = newId('wdr', now);
      const held = await l.openHold({ id, owner: accountId, asset: asset.symbol, amount: amount.value, kind: 'withdrawal', fresh: true });
      if (!held.ok) return held;
      // The threshold bounds what leaves without an admin per rolling 24 h (the approved-by-`auto`
      // withdrawals the limit counts), not per request: else a large withdrawal split into pieces
      // under it would all be approved and sent without anyone looking.
      const status: WithdrawalStatus = auto + value <= this.autoApprove ? 'approved' : 'pending';
      const row: WithdrawalsTable = {
        id,
        account_id: accountId,
        asset: asset.symbol,
        amount: amount.value.toString(),
        usdc_value: value.toString(),
        chain,
        address: address.value,
        status,
        tx_hash: null,
        reason: null,
        decided_by: status === 'approved' ? 'auto' : null,
        dispatching_at: null,
        client_withdrawal_id: clientId,
        created_at: now,
        updated_at: now,
      };
      await trx.insertInto('withdrawals').values(row).execute();
      // Balance rows before the audit chain head, as order batches take them (see Ledger.run).
      await l.flush();
      await audit.recordIn(trx, {
        type: 'trading.withdrawal.requested',
        accountId,
        actorId: accountId,
        details: { withdrawalId: id, asset: asset.symbol, amount: formatAmount(amount.value, asset.decimals), usdcValue: formatAmount(value, USDC_DECIMALS), chain, address: address.value, status, ...(clientId !== null ? { clientWithdrawalId: clientId } : {}), ...via(actor) },
      });
      return ok(row);
    });
    if (!result.ok) return result;
    const replayed = result.value.replayed === true;
    // A replay sets nothing off: the original was dispatched when it was taken (and an admin's
    // approve retries a send that failed).
    if (!replayed && result.value.status === 'approved') await this.dispatch(result.value.id);
    // Committed: answered whatever happens now (a 500 here would be retried by a client into a
    // second withdrawal).
    return ok({ ...(await this.committed(result.value)), replayed });
  }

  /**
   * A withdrawal whose change committed, as it stands now; if reading it back fails, the row as the
   * transaction wrote it. The change took effect, so it is answered as done: a 500 would invite a
   * retry, which finds it decided already (409) or withdraws twice.
   */
  private async committed(written: WithdrawalsTable): Promise<Withdrawal> {
    const fresh = await this.get(written.id).catch((err: unknown) => {
      this.deps.log.error({ err, withdrawalId: written.id }, 'withdrawal: reading a committed withdrawal back failed; answering it as committed');
      return undefined;
    });
    return fresh ?? this.toWithdrawal(written);
  }

  /** The owner cancels a pending withdrawal: the hold is released. `conflict` once it is decided. */
  async cancel(accountId: string, actor: Actor, id: string): Promise<Result<Withdrawal, 'not_found' | 'conflict' | 'four_eyes_required' | 'forbidden_role'>> {
    const r = await this.transition(id, { owner: accountId }, 'cancelled', (w) => [
      { type: 'trading.withdrawal.updated', accountId: w.account_id, actorId: accountId, details: { withdrawalId: id, status: 'cancelled', from: 'pending', ...via(actor) } },
    ]);
    return r.ok ? ok(await this.committed(r.value)) : r;
  }

  /** An admin rejects a pending withdrawal: the hold is released. */
  async reject(admin: Actor & { accountId: string }, id: string, reasonInput: string | undefined): Promise<Result<Withdrawal, 'not_found' | 'conflict' | 'four_eyes_required' | 'validation_failed' | 'forbidden_role'>> {
    // The owner reads the reason: no control, bidirectional or invisible formatting characters.
    let reason: string | undefined;
    if (reasonInput !== undefined) {
      const text = displayParagraphs(reasonInput, 'reason', 500);
      if (!text.ok) return text;
      reason = text.value === '' ? undefined : text.value;
    }
    const r = await this.transition(id, { admin: admin.accountId }, 'rejected', (w) => [
      { type: 'trading.withdrawal.updated', accountId: w.account_id, actorId: admin.accountId, details: { withdrawalId: id, status: 'rejected', from: 'pending', ...via(admin) } },
      { type: 'admin.withdrawal.rejected', accountId: w.account_id, actorId: admin.accountId, details: { withdrawalId: id, reason, ...via(admin) } },
    ], reason);
    return r.ok ? ok(await this.committed(r.value)) : r;
  }

  /**
   * An admin approves a pending withdrawal, which then goes to the chain adapter. Approving an
   * already approved one that is not sent (the adapter failed) tries sending again.
   */
  async approve(admin: Actor & { accountId: string }, id: string): Promise<Result<Withdrawal, 'not_found' | 'conflict' | 'four_eyes_required' | 'forbidden_role'>> {
    const current = await this.get(id);
    if (!current) return fail('not_found', 'No such withdrawal');
    if (current.status !== 'approved') {
      const r = await this.transition(id, { admin: admin.accountId }, 'approved', (w) => [
        { type: 'trading.withdrawal.updated', accountId: w.account_id, actorId: admin.accountId, details: { withdrawalId: id, status: 'approved', from: 'pending', ...via(admin) } },
        { type: 'admin.withdrawal.approved', accountId: w.account_id, actorId: admin.accountId, details: { withdrawalId: id, ...via(admin) } },
      ]);
      if (!r.ok) return r;
      await this.dispatch(id);
      return ok(await this.committed(r.value));
    }
    if (current.accountId === admin.accountId) return fail('four_eyes_required', 'An admin may not act on their own withdrawal');
    // A retry of an approved withdrawal (auto-approved, or its send failed): no decision is
    // recorded for it, so the send it sets off names this admin in its audit record.
    await this.dispatch(id, admin);
    const fresh = await this.get(id).catch((err: unknown) => {
      this.deps.log.error({ err, withdrawalId: id }, 'withdrawal: reading a retried withdrawal back failed; answering it as read before');
      return undefined;
    });
    return ok(fresh ?? current);
  }

  /** pending → approved | rejected | cancelled, in one transaction with its audit records. */
  private async transition(
    id: string,
    by: { owner: string } | { admin: string },
    to: 'approved' | 'rejected' | 'cancelled',
    events: (w: WithdrawalsTable) => AuditEvent[],
    reason?: string,
  ): Promise<Result<WithdrawalsTable, 'not_found' | 'conflict' | 'four_eyes_required' | 'forbidden_role'>> {
    const { ledger, audit, store } = this.deps;
    return ledger.run<WithdrawalsTable, 'not_found' | 'conflict' | 'four_eyes_required' | 'forbidden_role'>(async (l, trx) => {
      let q = trx.selectFrom('withdrawals').selectAll().where('id', '=', id);
      if (store.dialect === 'postgres') q = q.forUpdate();
      const w = await q.executeTakeFirst();
      if (!w || ('owner' in by && w.account_id !== by.owner)) return fail('not_found', 'No such withdrawal');
      if ('admin' in by && w.account_id === by.admin) return fail('four_eyes_required', 'An admin may not decide on their own withdrawal');
      if (w.status !== 'pending') return fail('conflict', `The withdrawal is ${w.status}, not pending`);
      // The deciding admin must still be one as committed: a demotion committed after the request's
      // role check refuses the decision (the withdrawal stays pending).
      if ('admin' in by && !(await lockStillAdmin(store, trx, by.admin))) return fail('forbidden_role', NO_LONGER_ADMIN);
      if (to !== 'approved') await l.releaseHold(id);
      const change = { status: to, updated_at: l.now, decided_by: 'admin' in by ? by.admin : by.owner, ...(reason ? { reason } : {}) };
      const updated = await trx
        .updateTable('withdrawals')
        .set(change)
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) return fail('conflict', 'The withdrawal changed meanwhile');
      await l.flush(); // balance rows before the audit chain head (see Ledger.run)
      await audit.recordManyIn(trx, events(w));
      return ok({ ...w, ...change });
    });
  }

  /**
   * Hands an approved withdrawal to the chain adapter, once: the process that claims it (sets
   * `dispatching_at`) sends; on success the held funds leave to `sys:external` in one transaction
   * with the status change and its audit record. On failure (of the adapter, or of recording what it
   * sent) the claim is dropped (the withdrawal stays approved, its funds held) so an admin may retry;
   * it never throws, so the request that committed the withdrawal still answers with it. A claim
   * whose process died (older than DISPATCH_CLAIM_STALE_MS) is taken again by an admin's retry.
   */
  async dispatch(id: string, retriedBy?: Actor & { accountId: string }): Promise<void> {
    try {
      await this.send(id, retriedBy);
    } catch (err) {
      // A store failure around the adapter call (the claim, reading the row, dropping the claim):
      // the withdrawal is committed, so the request or approval that set this off must still
      // answer it, never a 500 that a client would retry into a second withdrawal. A claim left
      // standing is retaken by an admin's retry once stale.
      this.deps.log.error({ err, withdrawalId: id }, 'withdrawal: dispatch failed; it stays approved with its funds held');
    }
  }

  private async send(id: string, retriedBy: (Actor & { accountId: string }) | undefined): Promise<void> {
    const { store, adapter, assets, log } = this.deps;
    const now = this.deps.clock.now();
    // A claim older than DISPATCH_CLAIM_STALE_MS was left by a process that died while sending: it
    // may be taken again (adapters are idempotent per withdrawal id, so a transfer that did go out is
    // not sent twice), else an approved withdrawal would stay held for good.
    const claimed = await store.db
      .updateTable('withdrawals')
      .set({ dispatching_at: now })
      .where('id', '=', id)
      .where('status', '=', 'approved')
      .where((eb) => eb.or([eb('dispatching_at', 'is', null), eb('dispatching_at', '<=', now - DISPATCH_CLAIM_STALE_MS)]))
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) return;
    const w = await store.db.selectFrom('withdrawals').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const asset = await assets.asset(w.asset);
    const amount = readMinor(w.amount);
    let txHash: string;
    try {
      ({ txHash } = await adapter.send({ id, chain: w.chain as Chain, asset: w.asset, amount, decimals: asset?.decimals ?? 0, address: w.address }));
    } catch (err) {
      log.error({ err, withdrawalId: id, adapter: adapter.name }, 'withdrawal: the chain adapter failed; it stays approved with its funds held');
      await store.db.updateTable('withdrawals').set({ dispatching_at: null }).where('id', '=', id).where('status', '=', 'approved').execute();
      return;
    }
    let done: Result<void, 'conflict'>;
    try {
      done = await this.record(w, amount, txHash, retriedBy);
    } catch (err) {
      // The transfer went out but recording it failed (the store, the audit log): drop the claim
      // so that an admin's retry sends again (adapters are idempotent per id) and records it. The
      // request that set this off was committed; it answers with the withdrawal still approved.
      log.error({ err, withdrawalId: id, adapter: adapter.name }, 'withdrawal: sent by the adapter but not recorded; it stays approved with its funds held');
      await store.db.updateTable('withdrawals').set({ dispatching_at: null }).where('id', '=', id).where('status', '=', 'approved').execute();
      return;
    }
    if (!done.ok) log.warn({ withdrawalId: id }, 'withdrawal: sent by the adapter but no longer approved; left for reconciliation');
  }

  /** Records a sent withdrawal: its held funds leave to `sys:external`, with the status change and its audit record. */
  private async record(w: WithdrawalsTable, amount: bigint, txHash: string, retriedBy?: Actor & { accountId: string }): Promise<Result<void, 'conflict'>> {
    const { ledger, audit, adapter } = this.deps;
    const id = w.id;
    return ledger.run<void, 'conflict'>(async (l, trx) => {
      const cur = await trx.selectFrom('withdrawals').select('status').where('id', '=', id).executeTakeFirstOrThrow();
      if (cur.status !== 'approved') return fail('conflict', 'not approved');
      const before = await l.balance(w.account_id, w.asset);
      const posted = await l.post('withdrawal.sent', id, [
        { owner: w.account_id, asset: w.asset, amount: -amount, hold: id },
        { owner: SYSTEM_OWNERS.external, asset: w.asset, amount },
      ]);
      if (!posted.ok) throw new Error(`withdrawal ${id}: ${posted.detail}`);
      if (w.asset !== USDC) await recordOutflow(trx, w.account_id, w.asset, amount, before.available + before.held);
      await trx.updateTable('withdrawals').set({ status: 'sent', tx_hash: txHash, updated_at: l.now }).where('id', '=', id).execute();
      await l.flush(); // balance rows before the audit chain head (see Ledger.run)
      await audit.recordIn(trx, {
        type: 'trading.withdrawal.updated',
        accountId: w.account_id,
        actorId: `system:${adapter.name}`,
        details: { withdrawalId: id, status: 'sent', from: 'approved', txHash, adapter: adapter.name, ...(retriedBy ? { retriedBy: retriedBy.accountId, ...via(retriedBy) } : {}) },
      });
      return ok(undefined);
    });
  }

  async get(id: string, accountId?: string): Promise<Withdrawal | undefined> {
    let q = this.deps.store.db.selectFrom('withdrawals').selectAll().where('id', '=', id);
    if (accountId) q = q.where('account_id', '=', accountId);
    const row = await q.executeTakeFirst();
    return row ? this.toWithdrawal(row) : undefined;
  }

  async list(filter: { accountId?: string; status?: WithdrawalStatus; before?: string; limit: number }): Promise<Withdrawal[]> {
    let q = this.deps.store.db.selectFrom('withdrawals').selectAll().orderBy('id', 'desc').limit(filter.limit);
    if (filter.accountId) q = q.where('account_id', '=', filter.accountId);
    if (filter.status) q = q.where('status', '=', filter.status);
    if (filter.before) q = q.where('id', '<', filter.before);
    const rows = await q.execute();
    const out: Withdrawal[] = [];
    for (const r of rows) out.push(await this.toWithdrawal(r));
    return out;
  }

  /** Sets an account's verification tier; it applies to the very next request. */
  async setTier(
    admin: Actor & { accountId: string },
    account: AccountRef,
    tier: Tier,
    options: { byAdmin?: boolean } = {},
  ): Promise<Result<{ from: Tier; to: Tier; status: LimitStatus }, 'four_eyes_required' | 'forbidden_role'>> {
    const { store, audit } = this.deps;
    // The tier is the withdrawal limit: an admin raising their own would bypass the four-eyes rule.
    // (An account created below, for a wallet that had none, is never the admin's own.)
    if (account === admin.accountId) return fail('four_eyes_required', 'An admin may not set their own verification tier');
    return store.transaction(async (trx): Promise<Result<{ from: Tier; to: Tier; status: LimitStatus }, 'forbidden_role'>> => {
      const now = this.deps.clock.now();
      // An account the admin prepares is created here: a write that fails or is refused leaves none
      // behind. Read under the account's lock: a concurrent change is waited for, so the audit
      // record's `from` is the tier this change replaces. With `byAdmin`, the admin must still be
      // one as committed: a demotion committed after the request's role check refuses the change.
      const accountId = await lockAdminTarget(store, trx, account, options.byAdmin ? admin.accountId : undefined);
      if (accountId === undefined) return fail('forbidden_role', NO_LONGER_ADMIN);
      const before = await trx.selectFrom('withdrawal_settings').select('tier').where('account_id', '=', accountId).executeTakeFirst();
      const from = (before ? Number(before.tier) : 0) as Tier;
      await trx
        .insertInto('withdrawal_settings')
        .values({ account_id: accountId, tier, tier_set_by: admin.accountId, address_book: 0, address_book_off_at: null, updated_at: now })
        .onConflict((oc) => oc.column('account_id').doUpdateSet({ tier, tier_set_by: admin.accountId, updated_at: now }))
        .execute();
      await audit.recordIn(trx, { type: 'admin.withdrawal_tier.changed', accountId, actorId: admin.accountId, details: { from, to: tier, ...via(admin) } });
      // The answer is what this transaction wrote: read after the commit, a failing read would
      // answer 500 for a change that took effect.
      return ok({ from, to: tier, status: await this.limitStatus(accountId, now, trx) });
    });
  }

  // Address book ---------------------------------------------------------------------------------

  async addresses(accountId: string): Promise<SavedAddress[]> {
    const rows = await this.deps.store.db.selectFrom('withdrawal_addresses').selectAll().where('account_id', '=', accountId).orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => ({ id: r.id, chain: r.chain as Chain, address: r.address, label: r.label, usableAt: Number(r.usable_at), createdAt: Number(r.created_at) }));
  }

  /** Saves an address; it becomes usable after the hold. `conflict` when it is saved already. */
  async addAddress(accountId: string, actor: Actor, input: { chain: string; address: string; label?: string }, now: number): Promise<Result<SavedAddress, 'validation_failed' | 'conflict'>> {
    if (!isChain(input.chain)) return fail('validation_failed', 'chain must be evm or solana');
    const address = normalizeAddress(input.chain, input.address);
    if (!address.ok) return address;
    let label: string | null = null;
    if (input.label !== undefined && input.label.trim() !== '') {
      const checked = displayText(input.label, 'label', 64);
      if (!checked.ok) return checked;
      label = checked.value;
    }
    const saved: SavedAddress = { id: newId('wad', now), chain: input.chain, address: address.value, label, usableAt: now + this.deps.config.addressHoldMs, createdAt: now };
    return this.deps.store.transaction(async (trx) => {
      // The account row is locked first on PostgreSQL, so two saves racing at the bound cannot both pass.
      await lockAccount(this.deps.store, trx, accountId);
      const held = await trx.selectFrom('withdrawal_addresses').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', accountId).executeTakeFirstOrThrow();
      if (Number(held.n) >= MAX_SAVED_ADDRESSES) return fail('conflict', `The address book holds at most ${MAX_SAVED_ADDRESSES} addresses; remove one first`);
      const inserted = await trx
        .insertInto('withdrawal_addresses')
        .values({ id: saved.id, account_id: accountId, chain: saved.chain, address: saved.address, label, usable_at: saved.usableAt, created_at: now })
        .onConflict((oc) => oc.columns(['account_id', 'chain', 'address']).doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) return fail('conflict', 'This address is already in the address book');
      await this.deps.audit.recordIn(trx, {
        type: 'trading.withdrawal.address_added',
        accountId,
        actorId: accountId,
        details: { addressId: saved.id, chain: saved.chain, address: saved.address, usableAt: saved.usableAt, ...via(actor) },
      });
      return ok(saved);
    });
  }

  async removeAddress(accountId: string, actor: Actor, id: string): Promise<Result<void, 'not_found'>> {
    return this.deps.store.transaction(async (trx) => {
      const row = await trx.selectFrom('withdrawal_addresses').selectAll().where('id', '=', id).where('account_id', '=', accountId).executeTakeFirst();
      if (!row) return fail('not_found', 'No such saved address');
      // Two removals at once on PostgreSQL both read the row; only the one that deletes it answers
      // 204 and is audited.
      const deleted = await trx.deleteFrom('withdrawal_addresses').where('id', '=', id).executeTakeFirst();
      if (Number(deleted.numDeletedRows) !== 1) return fail('not_found', 'No such saved address');
      await this.deps.audit.recordIn(trx, { type: 'trading.withdrawal.address_removed', accountId, actorId: accountId, details: { addressId: id, chain: row.chain, address: row.address, ...via(actor) } });
      return ok(undefined);
    });
  }

  /**
   * Turns the address book on (at once) or off. Switching it off waits out the same hold as a new
   * address, so whoever takes over a session cannot simply switch it off and withdraw anywhere.
   */
  async setAddressBook(accountId: string, actor: Actor, enabled: boolean, now: number): Promise<WithdrawalSettings> {
    return this.deps.store.transaction(async (trx) => {
      const current = await this.settings(accountId, trx, now);
      const offAt = enabled ? null : current.addressBook ? (current.addressBookOffAt ?? now + this.deps.config.addressHoldMs) : null;
      const book = enabled || offAt !== null ? 1 : 0;
      await trx
        .insertInto('withdrawal_settings')
        .values({ account_id: accountId, tier: 0, tier_set_by: null, address_book: book, address_book_off_at: offAt, updated_at: now })
        .onConflict((oc) => oc.column('account_id').doUpdateSet({ address_book: book, address_book_off_at: offAt, updated_at: now }))
        .execute();
      await this.deps.audit.recordIn(trx, { type: 'trading.withdrawal.address_book', accountId, actorId: accountId, details: { enabled, effectiveAt: offAt ?? now, ...via(actor) } });
      return this.settings(accountId, trx, now);
    });
  }

  private async toWithdrawal(r: WithdrawalsTable): Promise<Withdrawal> {
    const asset = await this.deps.assets.asset(r.asset);
    return {
      id: r.id,
      accountId: r.account_id,
      asset: r.asset,
      decimals: asset?.decimals ?? 0,
      amount: readMinor(r.amount),
      usdcValue: readMinor(r.usdc_value),
      chain: r.chain as Chain,
      address: r.address,
      status: r.status as WithdrawalStatus,
      txHash: r.tx_hash,
      reason: r.reason,
      clientWithdrawalId: r.client_withdrawal_id,
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
    };
  }
}

export function withdrawalView(w: Withdrawal) {
  return {
    id: w.id,
    asset: w.asset,
    amount: formatAmount(w.amount, w.decimals),
    usdcValue: formatAmount(w.usdcValue, USDC_DECIMALS),
    chain: w.chain,
    address: w.address,
    status: w.status,
    txHash: w.txHash,
    reason: w.reason,
    clientWithdrawalId: w.clientWithdrawalId,
    createdAt: w.createdAt,
    updatedAt: w.updatedAt,
  };
}
