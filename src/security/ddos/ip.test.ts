import { describe, expect, it } from 'vitest';
import { blockListOf, canonicalAddress, clientGroup, parseTarget } from './ip.js';

describe('client addresses', () => {
  it('canonicalises spellings of one address', () => {
    expect(canonicalAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(canonicalAddress('2001:DB8:0:0::1')).toBe('2001:db8::1');
    expect(canonicalAddress('not an ip')).toBeUndefined();
  });

  it('maps every spelling of an IPv4-mapped address to the IPv4 address', () => {
    for (const s of ['::ffff:192.0.2.1', '::FFFF:192.0.2.1', '0:0:0:0:0:ffff:192.0.2.1', '::ffff:c000:201', '0:0:0:0:0:FFFF:C000:0201']) expect(canonicalAddress(s)).toBe('192.0.2.1');
    expect(parseTarget('0:0:0:0:0:ffff:c000:200/120')).toBeUndefined(); // an IPv4 range is written as IPv4
    // A prefix after an IPv6 spelling counts IPv6 bits: ::ffff:198.51.100.0/24 is not 198.51.100.0/24
    // (nor /8 a /8 of IPv4); such a range is refused like the /120 above, never read as IPv4 bits.
    for (const t of ['::ffff:198.51.100.0/24', '::ffff:10.0.0.0/8', '::ffff:192.0.2.1/32', '0:0:0:0:0:ffff:c000:201/16']) expect(parseTarget(t), t).toBeUndefined();
    expect(parseTarget('::ffff:c000:201')).toMatchObject({ canonical: '192.0.2.1', family: 'ipv4' });
    // Other embeddings are other addresses (NAT64, IPv4-compatible) and keep their IPv6 form.
    expect(canonicalAddress('64:ff9b::192.0.2.1')).toBe('64:ff9b::c000:201');
  });

  it('drops an IPv6 zone index instead of failing', () => {
    expect(canonicalAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(clientGroup('fe80::1%25eth0')).toBe('fe80::/64');
    expect(canonicalAddress('1.2.3.4%eth0')).toBeUndefined();
  });

  it('groups IPv6 clients by /64 and IPv4 by address', () => {
    expect(clientGroup('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientGroup('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(clientGroup('203.0.113.7')).toBe('203.0.113.7');
  });

  it('parses block targets, normalising ranges to their network address', () => {
    expect(parseTarget('10.1.2.3/8')).toMatchObject({ canonical: '10.0.0.0/8', prefix: 8, family: 'ipv4' });
    expect(parseTarget('2001:db8::5/32')).toMatchObject({ canonical: '2001:db8::/32' });
    expect(parseTarget('203.0.113.7')).toMatchObject({ canonical: '203.0.113.7', prefix: 32 });
    expect(parseTarget('2001:db8::1/64')?.canonical).toBe(clientGroup('2001:db8::1'));
  });

  it('refuses targets that are not addresses or that would block nearly everyone', () => {
    for (const bad of ['', 'example.com', '10.0.0.0/33', '0.0.0.0/0', '10.0.0.0/7', '::/0', '2001:db8::/15', '1.2.3.4/x', '1.2.3.4/24/1']) expect(parseTarget(bad)).toBeUndefined();
  });

  it('matches addresses against ranges', () => {
    const list = blockListOf(['10.0.0.0/8', '2001:db8::/32', '203.0.113.7']);
    expect(list.check('10.200.1.1', 'ipv4')).toBe(true);
    expect(list.check('11.0.0.1', 'ipv4')).toBe(false);
    expect(list.check('2001:db8:ffff::1', 'ipv6')).toBe(true);
    expect(list.check('203.0.113.7', 'ipv4')).toBe(true);
  });

  it('an IPv6 range never matches IPv4 clients (node:net would match them through ::ffff:0:0/96)', () => {
    // A block (or a DDoS exemption) of ::/16 covers the IPv4-mapped range in node:net's eyes: it
    // would block, or exempt, every IPv4 client.
    const list = blockListOf(['::/16', '::ffff:0:0/96']);
    expect(list.check('203.0.113.7', 'ipv4')).toBe(false);
    expect(list.check('::1', 'ipv6')).toBe(true);
    expect(blockListOf(['0:0:0:0:0:ffff:cb00:7100/120']).check('203.0.113.7', 'ipv4')).toBe(false);
  });
});
