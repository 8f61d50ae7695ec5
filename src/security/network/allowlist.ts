import { isIP } from 'node:net';
import { normalizeIp } from '../../http/client-address.js';
import { AddressSet } from '../../lib/address-set.js';

/** The most entries an IP allowlist may hold (API.md). */
export const MAX_ALLOWLIST_ENTRIES = 10;

/** Canonical IPv6 text (lowercase, zeros compressed) as the WHATWG URL parser writes it. */
function canonicalIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/**
 * One allowlist entry in canonical spelling, or undefined when it is not an IPv4/IPv6 address or
 * CIDR range. IPv4-mapped IPv6 (`::ffff:1.2.3.4`, also as a /96+ range) becomes plain IPv4, so an
 * entry and a client address always meet in the same spelling.
 */
export function canonicalAllowlistEntry(entry: string): string | undefined {
  if (entry.includes('%')) return undefined; // zone ids name an interface of one host, not an address
  const [rawAddress, bits, ...rest] = entry.trim().split('/');
  if (rest.length > 0 || rawAddress === undefined || rawAddress === '') return undefined;
  if (bits !== undefined && !/^\d{1,3}$/.test(bits)) return undefined;
  const family = isIP(rawAddress);
  if (family === 0) return undefined;
  if (family === 4) {
    if (bits !== undefined && Number(bits) > 32) return undefined;
    return bits === undefined ? rawAddress : `${rawAddress}/${Number(bits)}`;
  }
  if (bits !== undefined && Number(bits) > 128) return undefined;
  const canonical = canonicalIpv6(rawAddress);
  // ::ffff:a.b.c.d in any spelling: the URL parser writes it as ::ffff:XXXX:XXXX.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped && (bits === undefined || Number(bits) >= 96)) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    const v4 = `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
    return bits === undefined ? v4 : `${v4}/${Number(bits) - 96}`;
  }
  return bits === undefined ? canonical : `${canonical}/${Number(bits)}`;
}

/** The widest range an entry may be and still bind a key to addresses (as for IP blocks). */
export const NARROWEST_BINDING_PREFIX = { ipv4: 8, ipv6: 16 } as const;

/**
 * Whether a canonical allowlist actually binds a key to some addresses: not empty, and no entry
 * wider than /8 (IPv4) or /16 (IPv6). `0.0.0.0/0` or two /1 halves are a whitelist in name only.
 */
export function bindsAddresses(entries: readonly string[]): boolean {
  return (
    entries.length > 0 &&
    entries.every((entry) => {
      const [address, bits] = entry.split('/') as [string, string | undefined];
      if (bits === undefined) return true;
      return Number(bits) >= (isIP(address) === 4 ? NARROWEST_BINDING_PREFIX.ipv4 : NARROWEST_BINDING_PREFIX.ipv6);
    })
  );
}

/**
 * Matches client addresses against an allowlist of addresses and CIDR ranges (an AddressSet: one
 * list per family, so an IPv6 range never admits IPv4 clients). An empty list allows every address.
 */
export class IpAllowlist {
  private readonly set = new AddressSet();
  readonly size: number;

  /**
   * `entries` should already be canonical (see canonicalAllowlistEntry). One that cannot be read
   * matches no address, but still counts: a whitelist that is not empty never allows every address
   * (fail closed), whatever a stored row holds.
   */
  constructor(entries: readonly string[]) {
    this.size = entries.length;
    for (const entry of entries) {
      const canonical = canonicalAllowlistEntry(entry);
      if (!canonical) continue;
      const [address, bits] = canonical.split('/') as [string, string | undefined];
      this.set.add(address, isIP(address) === 4 ? 'ipv4' : 'ipv6', bits === undefined ? undefined : Number(bits));
    }
  }

  allows(clientIp: string): boolean {
    if (this.size === 0) return true;
    const ip = normalizeIp(clientIp);
    const family = isIP(ip);
    if (family === 0) return false;
    return this.set.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }
}
