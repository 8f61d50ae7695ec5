import type { Account, Accounts } from '../../accounts/accounts.js';
import { chainOf } from '../../accounts/wallets.js';
import { ApiError } from '../../errors/registry.js';

/**
 * The account an admin route acts on, by wallet address. Reads never create one (404 when unknown);
 * a write may (as setting a role does), so an admin can prepare an account before its first sign-in.
 */
export async function adminTargetAccount(accounts: Accounts, address: string, create: boolean): Promise<Account> {
  if (!chainOf(address)) throw new ApiError('validation_failed', 'address must be an Ethereum (0x…) or Solana wallet address');
  if (!create) {
    // A store that fails is a 503 or 500 (the error handler), never "no such account".
    const existing = await accounts.byWallet(address);
    if (!existing) throw new ApiError('not_found', 'No account with this wallet address');
    return existing;
  }
  const found = await accounts.findOrCreate(address);
  if (!found.ok) throw new ApiError('validation_failed', 'address must be an Ethereum (0x…) or Solana wallet address');
  return found.value;
}
