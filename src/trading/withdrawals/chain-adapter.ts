import { createHash } from 'node:crypto';
import { base58 } from '@scure/base';
import type { Chain } from './addresses.js';

export interface OutgoingTransfer {
  /** The withdrawal id: real adapters pass it on as the idempotency key of the transfer. */
  id: string;
  chain: Chain;
  asset: string;
  /** Minor units of the asset. */
  amount: bigint;
  decimals: number;
  address: string;
}

/**
 * The port to the outside world for sending withdrawals. `send` resolves with the transaction
 * hash once the transfer is broadcast, or rejects (the withdrawal then stays approved, its funds
 * held, and an admin may retry). Implementations must be idempotent per `id`.
 */
export interface ChainAdapter {
  readonly name: string;
  send(transfer: OutgoingTransfer): Promise<{ txHash: string }>;
}

/**
 * The sandbox adapter: nothing leaves the server; a transfer "succeeds" at once with a hash shaped
 * as the chain's (0x + 32 bytes hex on EVM, a base58 64-byte signature on Solana). Like any adapter
 * it is idempotent per withdrawal id: the hash is derived from the id, so a retried send (the first
 * one went out but was not recorded) answers the same transfer, in every process.
 */
export class SandboxChainAdapter implements ChainAdapter {
  readonly name = 'sandbox';

  async send(transfer: OutgoingTransfer): Promise<{ txHash: string }> {
    const seed = `moondraft-sandbox-transfer:${transfer.chain}:${transfer.id}`;
    return { txHash: transfer.chain === 'evm' ? `0x${createHash('sha256').update(seed).digest('hex')}` : base58.encode(createHash('sha512').update(seed).digest()) };
  }
}

/**
 * Live without a real adapter: nothing is ever marked sent with an invented hash. Approved
 * withdrawals stay approved, their funds held, until an operator wires a real adapter.
 */
export class UnconfiguredChainAdapter implements ChainAdapter {
  readonly name = 'unconfigured';

  async send(): Promise<{ txHash: string }> {
    throw new Error('no chain adapter is configured for this environment');
  }
}
