import { base58 } from '@scure/base';
import { getAddress } from 'viem';
import { describe, expect, it } from 'vitest';
import { normalizeAddress } from '../../src/trading/withdrawals/addresses.js';

const LOWER = '0x52908400098527886e0f7030069857d2e4169ee7';
const CHECKSUMMED = '0x52908400098527886E0F7030069857D2E4169EE7'; // an EIP-55 test vector (all caps after 0x)
const MIXED = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'; // EIP-55 test vector

describe('withdrawal address validation', () => {
  it('EVM: accepts checksummed, all-lowercase and all-uppercase addresses and returns the EIP-55 form', () => {
    expect(normalizeAddress('evm', MIXED)).toEqual({ ok: true, value: MIXED });
    expect(normalizeAddress('evm', MIXED.toLowerCase())).toEqual({ ok: true, value: MIXED });
    expect(normalizeAddress('evm', LOWER)).toEqual({ ok: true, value: getAddress(LOWER) });
    expect(normalizeAddress('evm', CHECKSUMMED)).toMatchObject({ ok: true });
  });

  it('EVM: refuses a mixed-case address whose checksum is wrong (one letter flipped), bad shapes and the zero address', () => {
    const flipped = MIXED.replace('aA', 'Aa');
    expect(flipped).not.toBe(MIXED);
    expect(normalizeAddress('evm', flipped)).toMatchObject({ ok: false, code: 'validation_failed' });
    for (const bad of [MIXED.slice(0, -1), `${MIXED}0`, MIXED.slice(2), '0x' + 'g'.repeat(40), '0x0000000000000000000000000000000000000000', ' ' + MIXED]) {
      expect(normalizeAddress('evm', bad), bad).toMatchObject({ ok: false, code: 'validation_failed' });
    }
  });

  it('Solana: exactly 32 bytes of canonical base58', () => {
    const key = base58.encode(new Uint8Array(32).fill(7));
    expect(normalizeAddress('solana', key)).toEqual({ ok: true, value: key });
    expect(normalizeAddress('solana', base58.encode(new Uint8Array(31).fill(7)))).toMatchObject({ ok: false });
    expect(normalizeAddress('solana', base58.encode(new Uint8Array(33).fill(7)))).toMatchObject({ ok: false });
    expect(normalizeAddress('solana', key.replace(/.$/, '0'))).toMatchObject({ ok: false }); // 0 is not base58
    expect(normalizeAddress('solana', MIXED)).toMatchObject({ ok: false });
    expect(normalizeAddress('evm', key)).toMatchObject({ ok: false });
  });

  it('Solana: refuses the all-zero key (the System Program: a burn), as EVM refuses the zero address', () => {
    const zero = base58.encode(new Uint8Array(32));
    expect(zero).toBe('11111111111111111111111111111111');
    expect(normalizeAddress('solana', zero)).toMatchObject({ ok: false, code: 'validation_failed' });
    // One non-zero byte is an ordinary key.
    const almost = new Uint8Array(32);
    almost[31] = 1;
    expect(normalizeAddress('solana', base58.encode(almost))).toMatchObject({ ok: true });
  });
});
