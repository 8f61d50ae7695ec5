import { isIP } from 'node:net';

/**
 * The network a client address belongs to, as sessions show it: the /24 of an IPv4 address, the
 * /48 of an IPv6 one. Enough for a person to recognise "that was me at home", not enough to locate
 * them; the full address is never stored with a session.
 */
export function networkPrefix(ip: string): string {
  const bare = ip.split('%')[0]!; // drop an IPv6 zone id
  const family = isIP(bare);
  if (family === 4) {
    const [a, b, c] = bare.split('.');
    return `${a}.${b}.${c}.0/24`;
  }
  if (family === 6) {
    const groups = ipv6Groups(bare);
    const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
    if (mapped) return networkPrefix(`${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`);
    return `${groups.slice(0, 3).map((g) => g.toString(16)).join(':')}::/48`;
  }
  return 'unknown';
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a trailing dotted IPv4 split). */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16));
}
