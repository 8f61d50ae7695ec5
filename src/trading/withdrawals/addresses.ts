import { base58 } from '@scure/base';
import { getAddress } from 'viem';
import { fail, ok, type Result } from '../../errors/registry.js';

/** The chains withdrawals go to. Every asset has one (see tokens: USDC and admin-created assets are EVM). */
export const CHAINS = ['evm', 'solana'] as const;
export type Chain = (typeof CHAINS)[number];

export function isChain(value: unknown): value is Chain {
  return typeof value === 'string' && (CHAINS as readonly string[]).includes(value);
}

const EVM_HEX = /^0x[0-9a-fA-F]{40}$/;
const ZERO_EVM = '0x0000000000000000000000000000000000000000';

/**
 * Validates a destination address for a chain and returns its canonical form.
 * - EVM: 20-byte hex. An all-lowercase or all-uppercase address carries no checksum and is
 *   accepted; a mixed-case one must match its EIP-55 checksum exactly (a typo is caught, never
 *   "fixed"). The zero address (a burn) is refused. Canonical form: the EIP-55 checksummed address.
 * - Solana: base58 of exactly 32 bytes (an ed25519 public key), in canonical encoding. The all-zero
 *   key (the System Program, `111…1`: a burn, like EVM's zero address) is refused.
 * The refusal names the field, never echoes the input.
 */
export function normalizeAddress(chain: Chain, address: string): Result<string, 'validation_failed'> {
  if (chain === 'evm') {
    if (!EVM_HEX.test(address)) return fail('validation_failed', 'address must be a 0x-prefixed 20-byte hex address for this asset’s chain (evm)');
    const hex = address.slice(2);
    const mixed = /[a-f]/.test(hex) && /[A-F]/.test(hex);
    const checksummed = getAddress(address.toLowerCase());
    if (mixed && checksummed !== address) return fail('validation_failed', 'address has a wrong EIP-55 checksum (check it for typos)');
    if (checksummed.toLowerCase() === ZERO_EVM) return fail('validation_failed', 'address must not be the zero address');
    return ok(checksummed);
  }
  if (!/^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(address)) return fail('validation_failed', 'address must be a base58 Solana public key for this asset’s chain (solana)');
  let bytes: Uint8Array;
  try {
    bytes = base58.decode(address);
  } catch {
    return fail('validation_failed', 'address must be a base58 Solana public key');
  }
  if (bytes.length !== 32 || base58.encode(bytes) !== address) return fail('validation_failed', 'address must encode exactly 32 bytes (a Solana public key)');
  if (bytes.every((b) => b === 0)) return fail('validation_failed', 'address must not be the all-zero key (the System Program)');
  return ok(address);
}
