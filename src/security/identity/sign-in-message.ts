import type { Chain } from '../../accounts/wallets.js';

/**
 * What a wallet sign-in message says, whichever chain's format carried it (EIP-4361 for
 * Ethereum, Sign-In-With-Solana for Solana). Every field was parsed from a message that is
 * byte-for-byte the canonical rendering of these fields, so nothing else was signed.
 */
export interface SignInFields {
  chain: Chain;
  domain: string;
  /** Only EIP-4361 messages may name a scheme (`http` when the server is not behind https). */
  scheme: string | undefined;
  /** As written in the message (EIP-55 checksummed for Ethereum, base58 for Solana). */
  address: string;
  uri: string;
  version: string;
  chainId: string;
  nonce: string;
  issuedAt: Date;
  expirationTime: Date | undefined;
  notBefore: Date | undefined;
}

/** Why a message or signature was refused: `reason` goes to the security event, `detail` to the client. */
export interface SignInRefusal {
  reason: string;
  detail: string;
}

export type Parsed<T> = { ok: true; value: T } | ({ ok: false } & SignInRefusal);

export const refuse = (reason: string, detail: string): { ok: false } & SignInRefusal => ({ ok: false, reason, detail });

/** Sign-in messages are printable ASCII lines (EIP-4361 asks for ASCII; no bidi tricks, no CR). */
export const PRINTABLE_ASCII_LINES = /^[\x20-\x7e\n]*$/;

/** RFC 3986 pchar, as EIP-4361 defines request-id (and SIWS after it). */
export const REQUEST_ID = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%]+$/;

/** What our challenges ask the person to agree to, on either chain. */
export const SIGN_IN_STATEMENT = 'Sign in to Moondraft. This request does not move funds or trigger a blockchain transaction.';

/** The longest message we parse; real ones are well under 1 KiB. */
export const MAX_MESSAGE_LENGTH = 4096;

/** The chain a message is for, from its first line; undefined when it is neither format. */
export function messageChain(message: string): Chain | undefined {
  const firstLine = message.slice(0, message.indexOf('\n'));
  if (firstLine.endsWith(' wants you to sign in with your Ethereum account:')) return 'ethereum';
  if (firstLine.endsWith(' wants you to sign in with your Solana account:')) return 'solana';
  return undefined;
}
