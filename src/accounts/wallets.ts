/** Wallet addresses as accounts know them: one canonical spelling per wallet. */
export type Chain = 'ethereum' | 'solana';

const ETH = /^0x[0-9a-fA-F]{40}$/;
const SOL = /^[1-9A-HJ-NP-Za-km-z]{32,44}$/;

export function chainOf(address: string): Chain | undefined {
  if (ETH.test(address)) return 'ethereum';
  if (SOL.test(address)) return 'solana';
  return undefined;
}

/** Lowercase hex for Ethereum (checksums are presentation), base58 unchanged for Solana. */
export function canonicalWallet(address: string): string {
  return ETH.test(address) ? address.toLowerCase() : address;
}
