import { isIP } from 'node:net';

/**
 * The network an address belongs to, coarse enough not to identify a person: `/24` for IPv4
 * (`203.0.113.77` → `203.0.113.0/24`) and `/48` for IPv6 (`2001:db8:abcd:12::1` →
 * `2001:db8:abcd::/48`). IPv4-mapped IPv6 addresses are treated as IPv4, and so are 6to4 ones
 * (`2002:c633:644d::1` → `198.51.100.0/24`), whose /48 is one IPv4 address. Anything that is not an
 * IP address gives `null`: an access record never carries an unparsed client-supplied string.
 */
export function anonymizeIp(address: string | null | undefined): string | null {
  if (!address) return null;
  // Every API request asks, and a server sees the same few addresses again and again.
  const known = recent.get(address);
  if (known !== undefined) return known;
  const network = networkOf(address);
  if (recent.size >= RECENT_MAX) recent.clear();
  recent.set(address, network);
  return network;
}

/**
 * A client address, or a group of them (`2001:db8:1:2::/64`, as the per-address limits and the
 * automatic blocks count IPv6 clients), as the process log may name it: its network, by the rule
 * above. `null` when it is neither.
 */
export function anonymizeTarget(target: string): string | null {
  const slash = target.indexOf('/');
  return anonymizeIp(slash < 0 ? target : target.slice(0, slash));
}

/**
 * A rate-limit subject (`ip:<address>`, `k:<keyId>@<address>`, `k:<keyId>`, `a:<accountId>`) as
 * the process log may name it: the client address in it replaced by its network.
 */
export function anonymizeSubject(subject: string): string {
  const at = subject.startsWith('ip:') ? 2 : subject.startsWith('k:') ? subject.indexOf('@') : -1;
  if (at < 0) return subject;
  return `${subject.slice(0, at + 1)}${anonymizeTarget(subject.slice(at + 1)) ?? 'unknown'}`;
}

const RECENT_MAX = 10_000;
const recent = new Map<string, string | null>();

function networkOf(address: string): string | null {
  let ip = address.trim().toLowerCase();
  const zone = ip.indexOf('%');
  if (zone >= 0) ip = ip.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (mapped) ip = mapped[1]!;
  const family = isIP(ip);
  if (family === 4) {
    const [a, b, c] = ip.split('.');
    return `${Number(a)}.${Number(b)}.${Number(c)}.0/24`;
  }
  if (family === 6) {
    const groups = expandIpv6(ip);
    // IPv4-mapped (::ffff:a.b.c.d) in any spelling: expanded, or with the IPv4 part in hex.
    if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
      return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.0/24`;
    }
    // 6to4 (2002::/16, RFC 3056): the site's /48 is 2002:<its IPv4 address>::/48, so the /48 would
    // keep the whole IPv4 address. Its IPv4 network instead, as for any IPv4 client.
    if (groups[0] === 0x2002) return `${groups[1]! >> 8}.${groups[1]! & 0xff}.${groups[2]! >> 8}.0/24`;
    return `${groups.slice(0, 3).map((g) => g.toString(16)).join(':')}::/48`;
  }
  return null;
}

/** The eight 16-bit groups of a valid IPv6 address (handles `::` and a trailing dotted quad). */
function expandIpv6(ip: string): number[] {
  let text = ip;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16));
}
