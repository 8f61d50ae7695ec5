import { base58 } from '@scure/base';
import { isAddress } from 'viem';

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

/**
 * Whether an address is a wallet that can sign in: an Ethereum address whose EIP-55 checksum holds
 * when it is mixed-case (all-lowercase and all-uppercase carry none), or base58 of exactly 32 bytes
 * (an ed25519 public key). The shapes `chainOf` accepts are not enough: a mistyped checksum or a
 * base58 string of another length names no wallet anyone holds.
 */
export function isWalletAddress(address: string): boolean {
  const chain = chainOf(address);
  if (chain === 'ethereum') return isAddress(address, { strict: true }) || /^0x[0-9A-F]{40}$/.test(address);
  if (chain === 'solana') {
    try {
      return base58.decode(address).length === 32;
    } catch {
      return false;
    }
  }
  return false;
}
