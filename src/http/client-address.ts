import { canonicalAddress } from '../security/ddos/ip.js';

/**
 * One spelling per address (`::ffff:1.2.3.4` and its other spellings → `1.2.3.4`, IPv6 lowercase and
 * compressed, no zone index), so allowlists, blocks and limits match; anything else lowercased.
 * A forwarded address may carry the client's source port (`1.2.3.4:51234`, `[2001:db8::1]:443`;
 * some proxies write it so) or brackets (`[2001:db8::1]`): the port is not part of the client's
 * identity, or every new connection would be a new client to the limits and slip past blocks.
 */
export function normalizeIp(ip: string): string {
  return canonicalAddress(ip) ?? canonicalAddress(withoutPort(ip)) ?? ip.toLowerCase();
}

function withoutPort(ip: string): string {
  const text = ip.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(text);
  if (bracketed) return bracketed[1]!;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(text);
  return v4 ? v4[1]! : text;
}
