import { hash, randomBytes } from 'node:crypto';
import { base58 } from '@scure/base';

export type KeyEnvironment = 'sandbox' | 'live';

/** The visible prefix of an API key names its environment (API.md). */
export const KEY_PREFIX: Record<KeyEnvironment, string> = { sandbox: 'md_test_', live: 'md_live_' };

/** 192 random bits in the key (API.md asks for at least 128), 256 in the secret. */
const KEY_BYTES = 24;
const SECRET_BYTES = 32;
/** Characters of the random part kept for display (about 23 bits: identifies, never authenticates). */
const DISPLAY_CHARS = 4;

const KEY_SHAPE = /^md_(test|live)_([1-9A-HJ-NP-Za-km-z]{20,64})$/;

export function generateApiKey(env: KeyEnvironment): string {
  return KEY_PREFIX[env] + base58.encode(randomBytes(KEY_BYTES));
}

/** An hmac secret (`mds_` + base58 of 256 random bits); shown once, stored only encrypted. */
export function generateApiSecret(): string {
  return `mds_${base58.encode(randomBytes(SECRET_BYTES))}`;
}

/** The only form in which an API key is stored: its SHA-256 (the key has enough entropy that no salt is needed). */
export function hashApiKey(apiKey: string): string {
  return hash('sha256', apiKey, 'hex');
}

export function displayPrefix(apiKey: string): string {
  const m = KEY_SHAPE.exec(apiKey);
  return m ? `md_${m[1]}_${m[2]!.slice(0, DISPLAY_CHARS)}` : apiKey.slice(0, 8 + DISPLAY_CHARS);
}

/** The environment an API key's prefix claims, or undefined when it does not look like one of ours. */
export function environmentOfKey(apiKey: string): KeyEnvironment | undefined {
  const m = KEY_SHAPE.exec(apiKey);
  if (!m) return undefined;
  return m[1] === 'live' ? 'live' : 'sandbox';
}
