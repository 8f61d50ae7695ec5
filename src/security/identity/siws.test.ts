import { ed25519 } from '@noble/curves/ed25519.js';
import { base58 } from '@scure/base';
import { describe, expect, it } from 'vitest';
import { createSolanaMessage, parseSolanaMessage, solanaPublicKey, verifySolanaSignature, type SolanaMessageFields } from './siws.js';

function solanaWallet(secretKey = ed25519.utils.randomSecretKey()) {
  return {
    address: base58.encode(ed25519.getPublicKey(secretKey)),
    sign: (message: string) => base58.encode(ed25519.sign(new TextEncoder().encode(message), secretKey)),
  };
}

const wallet = solanaWallet(new Uint8Array(32).fill(7));
const fields: SolanaMessageFields = {
  domain: 'api.moondraft.example',
  address: wallet.address,
  statement: 'Sign in to Moondraft.',
  uri: 'https://api.moondraft.example',
  version: '1',
  chainId: 'mainnet',
  nonce: '0123456789abcdef0123456789abcdef',
  issuedAt: '2026-01-01T00:00:00.000Z',
  expirationTime: '2026-01-01T00:05:00.000Z',
};

describe('Sign-In-With-Solana messages', () => {
  it('renders the wallet-standard layout', () => {
    expect(createSolanaMessage(fields)).toBe(
      [
        `api.moondraft.example wants you to sign in with your Solana account:`,
        wallet.address,
        '',
        'Sign in to Moondraft.',
        '',
        'URI: https://api.moondraft.example',
        'Version: 1',
        'Chain ID: mainnet',
        'Nonce: 0123456789abcdef0123456789abcdef',
        'Issued At: 2026-01-01T00:00:00.000Z',
        'Expiration Time: 2026-01-01T00:05:00.000Z',
      ].join('\n'),
    );
  });

  it('parses what it renders, with and without the optional parts', () => {
    for (const f of [fields, { ...fields, statement: undefined, expirationTime: undefined }, { ...fields, requestId: 'req-1', resources: ['https://a.example/x', 'ipfs://bafy'] }]) {
      const parsed = parseSolanaMessage(createSolanaMessage(f));
      expect(parsed.ok).toBe(true);
      if (parsed.ok) expect(parsed.value).toMatchObject({ chain: 'solana', domain: f.domain, address: f.address, nonce: f.nonce, issuedAt: new Date(f.issuedAt) });
    }
  });

  it('refuses anything but the canonical rendering', () => {
    const text = createSolanaMessage(fields);
    for (const bad of [`${text}\n`, text.replace('\n\nURI', '\nURI'), text.replace('Version: 1\nChain ID: mainnet', 'Chain ID: mainnet\nVersion: 1'), `${text}\nNot Before: x`, text.replace('Issued At: 2026-01-01T00:00:00.000Z', 'Issued At: yesterday'), text.replace(/\n/g, '\r\n')]) {
      expect(parseSolanaMessage(bad).ok, JSON.stringify(bad.slice(-40))).toBe(false);
    }
  });

  it('verifies the ed25519 signature of the exact bytes by the address key', () => {
    const text = createSolanaMessage(fields);
    expect(verifySolanaSignature(text, wallet.address, wallet.sign(text)).ok).toBe(true);
    expect(verifySolanaSignature(`${text} `, wallet.address, wallet.sign(text)).ok).toBe(false);
    expect(verifySolanaSignature(text, solanaWallet().address, wallet.sign(text)).ok).toBe(false);
  });

  it('accepts only base58 addresses of 32 bytes', () => {
    expect(solanaPublicKey(wallet.address)).toHaveLength(32);
    expect(solanaPublicKey('1111111111111111111111111111111')).toBeUndefined();
    expect(solanaPublicKey('0OIl'.repeat(10))).toBeUndefined();
  });
});
