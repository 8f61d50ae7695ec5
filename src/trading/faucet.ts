import type { AuditLog } from '../audit/audit-log.js';
import { fail, ok, type Result } from '../errors/registry.js';
import type { Clock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import type { Assets } from './assets/index.js';
import { SYSTEM_OWNERS, type Ledger } from './ledger/index.js';
import { formatAmount, parseAmount, pow10, readMinor } from './money.js';
import type { Actor } from './orders/types.js';

const DAY = 86_400_000;

/**
 * The sandbox faucet: credits test funds from the issuance account, bounded per call and per
 * rolling 24 h per account and asset (whole units of the asset). Only assets flagged for the
 * faucet (USDC is) are dispensed. The route exists only in sandbox, and in live the faucet refuses
 * whoever calls it.
 */
export class Faucet {
  constructor(
    private readonly deps: { ledger: Ledger; assets: Assets; clock: Clock; enabled: boolean; maxPerCall: string; maxPerDay: string; audit?: AuditLog | undefined },
  ) {}

  /** Credits `amountText` of the asset; the grant is audited (`trading.faucet`) in its transaction. */
  async grant(accountId: string, assetSymbol: string, amountText: string, actor?: Actor): Promise<Result<{ asset: string; amount: bigint; decimals: number; available: bigint }, 'validation_failed' | 'faucet_limit_exceeded'>> {
    // Live has no faucet route; should anything else call it there, it still credits nothing.
    if (!this.deps.enabled) return fail('validation_failed', 'The faucet exists in the sandbox only');
    const asset = await this.deps.assets.asset(assetSymbol);
    if (!asset || !asset.faucet) return fail('validation_failed', 'asset: the faucet does not dispense this asset');
    const amount = parseAmount(amountText, asset.decimals, 'amount');
    if (!amount.ok) return amount;
    const perCall = BigInt(this.deps.maxPerCall) * pow10(asset.decimals);
    const perDay = BigInt(this.deps.maxPerDay) * pow10(asset.decimals);
    if (amount.value > perCall) return fail('validation_failed', `amount is above the faucet's ${this.deps.maxPerCall} ${asset.symbol} per call`);
    return this.deps.ledger.run(async (ledger, trx) => {
      const now = ledger.now;
      // The balance row first: its version, read before the grants are counted, is what the credit
      // below checks. Read after them, a grant committed in between would go unnoticed.
      // Locked (on PostgreSQL) with the row created if the account has none yet: see lockBalance.
      await ledger.lockBalance(accountId, asset.symbol);
      const grants = await trx.selectFrom('faucet_grants').select('amount').where('account_id', '=', accountId).where('asset', '=', asset.symbol).where('created_at', '>', now - DAY).execute();
      const granted = grants.reduce((sum, g) => sum + readMinor(g.amount), 0n);
      if (granted + amount.value > perDay) {
        return fail('faucet_limit_exceeded', `The faucet gives at most ${this.deps.maxPerDay} ${asset.symbol} per account per 24 h; ${formatAmount(perDay - granted > 0n ? perDay - granted : 0n, asset.decimals)} is left`);
      }
      const id = newId('fct', now);
      // The credit rewrites the account's balance row with an optimistic check on the version read
      // above, so two grants racing in two processes cannot both pass the daily check: the loser
      // retries and sees both.
      const posted = await ledger.post('faucet', id, [
        { owner: SYSTEM_OWNERS.issuance, asset: asset.symbol, amount: -amount.value },
        { owner: accountId, asset: asset.symbol, amount: amount.value },
      ]);
      if (!posted.ok) throw new Error(posted.detail);
      await trx.insertInto('faucet_grants').values({ id, account_id: accountId, asset: asset.symbol, amount: amount.value.toString(), created_at: now }).execute();
      const via = actor === undefined ? {} : actor.kind === 'apiKey' ? { via: 'apiKey', keyId: actor.id } : { via: actor.kind, sessionId: actor.id };
      // Balance rows before the audit chain head, as order batches take them (see Ledger.run).
      await ledger.flush();
      await this.deps.audit?.recordIn(trx, { type: 'trading.faucet', accountId, actorId: accountId, details: { grantId: id, asset: asset.symbol, amount: formatAmount(amount.value, asset.decimals), ...via } });
      const balance = await ledger.balance(accountId, asset.symbol);
      return ok({ asset: asset.symbol, amount: amount.value, decimals: asset.decimals, available: balance.available });
    });
  }
}
