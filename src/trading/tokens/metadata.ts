import { fail, ok, type Result } from '../../errors/registry.js';
import { isIP } from 'node:net';
import { displayParagraphs, displayText } from '../../lib/text.js';
import { isSpecialPurpose } from '../../security/network/countries.js';

/** Symbols nobody may launch: the quote asset and well-known assets a launch could impersonate. */
export const RESERVED_SYMBOLS: ReadonlySet<string> = new Set(['USDC', 'USDT', 'USD', 'EUR', 'DAI', 'BTC', 'WBTC', 'ETH', 'WETH', 'SOL', 'WSOL']);

/**
 * Most decimals a launched token may have. An order's quantity is at most 2^63-1 minor units (the
 * trading contract), so with 18 decimals no order could trade more than about 9.2 tokens, and
 * with the launch market's 1 USDC minimum nothing priced below about 0.11 USDC could trade at
 * all. With 9 an order may move up to about 9.2 billion tokens.
 */
export const MAX_LAUNCH_DECIMALS = 9;

/** Most whole tokens a launch with standard parameters may issue; only admins may exceed it. */
export const STANDARD_MAX_SUPPLY = 10n ** 15n;

/** Hard ceiling on a launch's supply in minor units, for everyone: it must fit numeric(39,0) with room for sums. */
export const MAX_SUPPLY_MINOR = 10n ** 36n;

export const NAME_MAX = 64;
export const DESCRIPTION_MAX = 1000;
export const URL_MAX = 2048;

/** A token name: 1–64 characters after trimming, visible, no control, bidi or invisible format characters. */
export function validName(input: string): Result<string, 'validation_failed'> {
  return displayText(input, 'name', NAME_MAX);
}

/** A description: at most 1,000 characters; line breaks and tabs allowed, other controls not. */
export function validDescription(input: string): Result<string, 'validation_failed'> {
  return displayParagraphs(input, 'description', DESCRIPTION_MAX);
}

/** Special-use names (RFC 6761, 6762, 8375) and the private-use `.internal`: never a public site. */
const LOCAL_NAME = /(?:^|\.)(?:localhost|local|internal|home\.arpa)$/;

/**
 * Whether a URL's hostname (as the WHATWG parser writes it: lowercase, punycode, IPv4 in dotted
 * decimal, IPv6 in brackets) can be a public site: an IP literal outside the special-purpose
 * ranges (loopback, private, link-local, shared, multicast, …), or a name with a dot that is not
 * special-use. Every client showing the token fetches its image, and its website is one click
 * away: a host on the viewer's own machine or network (a router's admin page, a cloud metadata
 * service, an intranet name) would make a public token page send requests inside it.
 */
function publicHost(hostname: string): boolean {
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname.replace(/\.$/, '');
  if (isIP(host) !== 0) return !isSpecialPurpose(host);
  return host.includes('.') && !LOCAL_NAME.test(host);
}

/**
 * A website or image URL: absolute `https:` with a public host, no user name or password (phishing
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
  if (!publicHost(url.hostname)) return fail('validation_failed', `${what} must name a public host`);
  if (url.href.length > URL_MAX) return fail('validation_failed', `${what} must be at most ${URL_MAX} characters`);
  return ok(url.href);
}
