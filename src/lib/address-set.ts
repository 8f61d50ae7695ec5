import { BlockList } from 'node:net';

export type AddressFamily = 'ipv4' | 'ipv6';

/**
 * Addresses and CIDR ranges to match canonical client addresses against (node:net BlockList does
 * the prefix arithmetic), one list per family. A single BlockList matches an IPv4 address against
 * an IPv6 rule through its IPv4-mapped form: an IPv6 range holding ::ffff:0:0/96 (`::/16`, `::/0`)
 * would match every IPv4 client. Client addresses arrive canonical (IPv4-mapped IPv6 as IPv4), and
 * so do the entries, so each family is checked only against its own.
 */
export class AddressSet {
  private readonly lists = { ipv4: new BlockList(), ipv6: new BlockList() };

  /** Adds one address, or the range `address/prefix`. */
  add(address: string, family: AddressFamily, prefix?: number): void {
    if (prefix === undefined || prefix === (family === 'ipv4' ? 32 : 128)) this.lists[family].addAddress(address, family);
    else this.lists[family].addSubnet(address, prefix, family);
  }

  check(address: string, family: AddressFamily): boolean {
    return this.lists[family].check(address, family);
  }
}
