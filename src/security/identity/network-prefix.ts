import { anonymizeIp } from '../../audit/anonymize.js';

/**
 * The network a client address belongs to, as sessions show it: the /24 of an IPv4 address, the
 * /48 of an IPv6 one (IPv4-mapped and 6to4 addresses as IPv4). Enough for a person to recognise
 * "that was me at home", not enough to locate them; the full address is never stored with a
 * session. The same rule as the audit trail's access events (anonymizeIp), so the two never differ.
 */
export function networkPrefix(ip: string): string {
  return anonymizeIp(ip) ?? 'unknown';
}
