import { isIP } from 'node:net';
import { AddressSet } from '../../lib/address-set.js';

/**
 * Client addresses as the DDoS guard and the unauthenticated rate limits see them. An IPv6 client
 * controls at least a /64 (often far more), so per-address counting on IPv6 happens per /64:
 * otherwise one host could rotate through 2^64 addresses and never be counted twice.
 */

/**
 * Canonical spelling of a single address: IPv4-mapped IPv6 in any spelling (`::ffff:1.2.3.4`,
 * `0:0:0:0:0:ffff:102:304`) → `1.2.3.4`, so an IPv4 block or counter sees one address whichever
 * way a proxy wrote it; IPv6 lowercase, compressed, without a zone index (`fe80::1%eth0` names the
 * interface the packet came in on, not another host).
 */
export function canonicalAddress(ip: string): string | undefined {
  let trimmed = ip.trim().toLowerCase();
  const zone = trimmed.indexOf('%');
  if (zone !== -1) {
    trimmed = trimmed.slice(0, zone);
    if (isIP(trimmed) !== 6) return undefined;
  }
  const family = isIP(trimmed);
  if (family === 4) return trimmed;
  if (family !== 6) return undefined;
  // The WHATWG URL serializer prints IPv6 in its canonical RFC 5952 form (embedded IPv4 as hex).
  const canonical = new URL(`http://[${trimmed}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

export interface Target {
  /** `1.2.3.4`, `2001:db8::1`, or a range `10.0.0.0/8`, `2001:db8::/32` (network address canonical). */
  canonical: string;
  address: string;
  family: 'ipv4' | 'ipv6';
  /** Prefix length; 32 or 128 for a single address. */
  prefix: number;
}

/** Parses an address or CIDR range; the range is normalised to its network address. */
export function parseTarget(input: string): Target | undefined {
  const [addr, bits, ...rest] = input.trim().split('/');
  if (rest.length > 0 || addr === undefined) return undefined;
  const canonical = canonicalAddress(addr);
  if (!canonical) return undefined;
  const family = isIP(canonical) === 4 ? 'ipv4' : 'ipv6';
  const max = family === 'ipv4' ? 32 : 128;
  if (bits !== undefined && !/^\d{1,3}$/.test(bits)) return undefined;
  // An IPv4-mapped address written as IPv6 becomes IPv4, but a prefix after it counts IPv6 bits
  // (::ffff:198.51.100.0/24 is ::/24): read as IPv4 bits it would name another range. An IPv4
  // range is written as IPv4.
  if (bits !== undefined && family === 'ipv4' && isIP(addr.trim()) !== 4) return undefined;
  const prefix = bits === undefined ? max : Number(bits);
  if (prefix > max || (prefix < 8 && family === 'ipv4') || (prefix < 16 && family === 'ipv6')) return undefined;
  if (prefix === max) return { canonical, address: canonical, family, prefix };
  const network = formatAddress(maskBytes(addressBytes(canonical), prefix), family);
  return { canonical: `${network}/${prefix}`, address: network, family, prefix };
}

/** The unit that unauthenticated limits and failure counters apply to: the address, or its IPv6 /64. */
export function clientGroup(ip: string): string {
  const canonical = canonicalAddress(ip) ?? ip;
  if (isIP(canonical) !== 6) return canonical;
  return `${formatAddress(maskBytes(addressBytes(canonical), 64), 'ipv6')}/64`;
}

/** Matches canonical client addresses against blocked or exempt targets. */
export type AddressMatcher = Pick<AddressSet, 'check'>;

/** An AddressSet of these targets (exact addresses and ranges; unreadable ones are left out). */
export function blockListOf(targets: Iterable<string>): AddressMatcher {
  const set = new AddressSet();
  for (const raw of targets) {
    const t = parseTarget(raw);
    if (t) set.add(t.address, t.family, t.prefix);
  }
  return set;
}

export function familyOf(ip: string): 'ipv4' | 'ipv6' {
  return isIP(ip) === 6 ? 'ipv6' : 'ipv4';
}

function addressBytes(canonical: string): number[] {
  if (isIP(canonical) === 4) return canonical.split('.').map(Number);
  let text = canonical;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail.push(...v4[1]!.split('.').map(Number));
    text = `${text.slice(0, -v4[1]!.length)}0:0`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = rest ? rest.split(':') : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right].map((g) => parseInt(g, 16));
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

function maskBytes(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

function formatAddress(bytes: number[], family: 'ipv4' | 'ipv6'): string {
  if (family === 'ipv4') return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}
