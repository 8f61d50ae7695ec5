/**
 * Ledger owners that are not accounts. Account balances (owner = account id) and the fee account
 * may never go below zero; money enters the system from `issuance` (faucet, token supply) and
 * leaves to / arrives from `external` (withdrawals, deposits), which therefore carry negative
 * balances: the mirror image of everything held inside.
 */
export const SYSTEM_OWNERS = {
  fees: 'sys:fees',
  issuance: 'sys:issuance',
  external: 'sys:external',
} as const;

export function mayGoNegative(owner: string): boolean {
  return owner === SYSTEM_OWNERS.issuance || owner === SYSTEM_OWNERS.external;
}

export function isSystemOwner(owner: string): boolean {
  return owner.startsWith('sys:');
}
