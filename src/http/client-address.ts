import { canonicalAddress } from '../security/ddos/ip.js';

/**
 * One spelling per address (`::ffff:1.2.3.4` and its other spellings → `1.2.3.4`, IPv6 lowercase and
 * compressed, no zone index), so allowlists, blocks and limits match; anything else lowercased.
 */
export function normalizeIp(ip: string): string {
  return canonicalAddress(ip) ?? ip.toLowerCase();
}
