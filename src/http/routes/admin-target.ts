import type { Account, AccountRef, Accounts } from '../../accounts/accounts.js';
import { chainOf, isWalletAddress } from '../../accounts/wallets.js';
import { ApiError } from '../../errors/registry.js';

const NOT_A_WALLET = 'address must be an Ethereum (0x…) or Solana wallet address';

/**
 * The account an admin route reads, by wallet address: never created (404 when unknown). A write
 * may prepare one (as setting a role does), before the account's first sign-in: adminWriteTarget.
 */
export async function adminTargetAccount(accounts: Accounts, address: string): Promise<Account> {
  if (!chainOf(address)) throw new ApiError('validation_failed', NOT_A_WALLET);
  // A store that fails is a 503 or 500 (the error handler), never "no such account".
  const existing = await accounts.byWallet(address);
  if (!existing) throw new ApiError('not_found', 'No account with this wallet address');
  return existing;
}

/** The account an admin write acts on: `existing` when the wallet has one, `ref` for the write. */
export interface AdminWriteTarget {
  existing: Account | undefined;
  /** The account's id, or its creation inside the write's transaction (a failed write leaves none). */
  ref: AccountRef;
  /** The account, once the write has committed. */
  account(): Account;
}

/**
 * The account an admin write prepares, by wallet address: an existing one, or one the write creates
 * in its own transaction, so that a write refused or failing there leaves no empty account behind.
 */
export async function adminWriteTarget(accounts: Accounts, address: string): Promise<AdminWriteTarget> {
  if (!chainOf(address) || !isWalletAddress(address)) throw new ApiError('validation_failed', NOT_A_WALLET);
  const existing = await accounts.byWallet(address);
  if (existing) return { existing, ref: existing.id, account: () => existing };
  let prepared: Account | undefined;
  return {
    existing: undefined,
    ref: async (trx) => {
      const found = await accounts.findOrCreateIn(trx, address);
      if (!found.ok) throw new ApiError('validation_failed', NOT_A_WALLET);
      prepared = found.value;
      return prepared.id;
    },
    account: () => {
      if (!prepared) throw new Error('the account is known only once the write has run');
      return prepared;
    },
  };
}
