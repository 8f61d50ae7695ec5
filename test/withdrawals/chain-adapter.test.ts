import { base58 } from '@scure/base';
import { describe, expect, it } from 'vitest';
import { SandboxChainAdapter, type OutgoingTransfer } from '../../src/trading/withdrawals/chain-adapter.js';

const transfer = (id: string, chain: OutgoingTransfer['chain']): OutgoingTransfer => ({ id, chain, asset: 'USDC', amount: 1_000_000n, decimals: 6, address: 'x' });

describe('sandbox chain adapter', () => {
  it('is idempotent per withdrawal id, as the port requires: a retried send answers the same transaction hash', async () => {
    // A send whose recording failed is sent again by an admin's retry: a real adapter answers the
    // transfer it already made, not a second one; the sandbox must behave the same.
    const a = new SandboxChainAdapter();
    const b = new SandboxChainAdapter(); // another server process
    for (const chain of ['evm', 'solana'] as const) {
      const first = await a.send(transfer('wdr_01J0000000000000000000000A', chain));
      expect(await a.send(transfer('wdr_01J0000000000000000000000A', chain))).toEqual(first);
      expect(await b.send(transfer('wdr_01J0000000000000000000000A', chain))).toEqual(first);
      expect((await a.send(transfer('wdr_01J0000000000000000000000B', chain))).txHash).not.toBe(first.txHash);
    }
  });

  it('answers hashes shaped as the chain’s: 0x + 32 bytes hex on EVM, a base58 64-byte signature on Solana', async () => {
    const a = new SandboxChainAdapter();
    expect((await a.send(transfer('wdr_01J0000000000000000000000C', 'evm'))).txHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(base58.decode((await a.send(transfer('wdr_01J0000000000000000000000C', 'solana'))).txHash)).toHaveLength(64);
  });
});
