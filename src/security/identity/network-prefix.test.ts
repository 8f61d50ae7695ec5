import { describe, expect, it } from 'vitest';
import { anonymizeIp } from '../../audit/anonymize.js';
import { networkPrefix } from './network-prefix.js';

describe('networkPrefix', () => {
  it('keeps the /24 of an IPv4 address', () => {
    expect(networkPrefix('203.0.113.77')).toBe('203.0.113.0/24');
    expect(networkPrefix('127.0.0.1')).toBe('127.0.0.0/24');
  });

  it('keeps the /48 of an IPv6 address in any spelling', () => {
    expect(networkPrefix('2001:db8:abcd:12:1:2:3:4')).toBe('2001:db8:abcd::/48');
    expect(networkPrefix('2001:0DB8:ABCD:0012::1')).toBe('2001:db8:abcd::/48');
    expect(networkPrefix('2001:db8::1')).toBe('2001:db8:0::/48');
    expect(networkPrefix('::1')).toBe('0:0:0::/48');
    expect(networkPrefix('fe80::1%eth0')).toBe('fe80:0:0::/48');
    expect(networkPrefix('64:ff9b::192.0.2.33')).toBe('64:ff9b:0::/48');
  });

  it('treats an IPv4-mapped IPv6 address as IPv4', () => {
    expect(networkPrefix('::ffff:198.51.100.9')).toBe('198.51.100.0/24');
  });

  it('treats a 6to4 address (2002::/16) as the IPv4 address its /48 embeds', () => {
    expect(networkPrefix('2002:c633:644d:1::5')).toBe('198.51.100.0/24');
  });

  it('agrees with the audit trail\'s anonymization of the same address', () => {
    for (const ip of ['203.0.113.77', '::ffff:198.51.100.9', '2001:db8:abcd:12::1', '2002:c633:644d::1', 'fe80::1%eth0']) {
      expect(networkPrefix(ip)).toBe(anonymizeIp(ip));
    }
  });

  it('never echoes something that is not an address', () => {
    expect(networkPrefix('not-an-ip')).toBe('unknown');
    expect(networkPrefix('')).toBe('unknown');
  });
});
