import { fail, ok, type Result } from '../../errors/registry.js';

/** Symbols nobody may launch: the quote asset and well-known assets a launch could impersonate. */
export const RESERVED_SYMBOLS: ReadonlySet<string> = new Set(['USDC', 'USDT', 'USD', 'EUR', 'DAI', 'BTC', 'WBTC', 'ETH', 'WETH', 'SOL', 'WSOL']);

/** Most whole tokens a launch with standard parameters may issue; only admins may exceed it. */
export const STANDARD_MAX_SUPPLY = 10n ** 15n;

/** Hard ceiling on a launch's supply in minor units, for everyone: it must fit numeric(39,0) with room for sums. */
export const MAX_SUPPLY_MINOR = 10n ** 36n;

export const NAME_MAX = 64;
export const DESCRIPTION_MAX = 1000;
export const URL_MAX = 2048;

// Control characters (C0, DEL, C1) and bidi overrides make names that lie about themselves.
// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** A token name: 1–64 characters after trimming, no control or bidi-override characters. */
export function validName(input: string): Result<string, 'validation_failed'> {
  const name = input.trim();
  if (name.length < 1 || name.length > NAME_MAX) return fail('validation_failed', `name must be 1–${NAME_MAX} characters`);
  if (UNSAFE_TEXT.test(name)) return fail('validation_failed', 'name must not contain control characters');
  return ok(name);
}

export function validDescription(input: string): Result<string, 'validation_failed'> {
  const text = input.trim();
  if (text.length > DESCRIPTION_MAX) return fail('validation_failed', `description must be at most ${DESCRIPTION_MAX} characters`);
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u202a-\u202e\u2066-\u2069]/.test(text)) return fail('validation_failed', 'description must not contain control characters');
  return ok(text);
}

/**
 * A website or image URL: absolute `https:` with a host, no user name or password (phishing
 * links hide a host behind them), at most 2048 characters. Returns the parsed, normalized form.
 */
export function validHttpsUrl(input: string, what: string): Result<string, 'validation_failed'> {
  if (input.length > URL_MAX) return fail('validation_failed', `${what} must be at most ${URL_MAX} characters`);
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return fail('validation_failed', `${what} must be an absolute https URL`);
  }
  if (url.protocol !== 'https:') return fail('validation_failed', `${what} must use https`);
  if (!url.hostname) return fail('validation_failed', `${what} must name a host`);
  if (url.username || url.password) return fail('validation_failed', `${what} must not carry credentials`);
  if (url.href.length > URL_MAX) return fail('validation_failed', `${what} must be at most ${URL_MAX} characters`);
  return ok(url.href);
}
