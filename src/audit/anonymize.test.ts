import { describe, expect, it } from 'vitest';
import { anonymizeIp, anonymizeSubject } from './anonymize.js';

describe('anonymizeIp', () => {
  it('keeps only the /24 of an IPv4 address', () => {
    expect(anonymizeIp('203.0.113.77')).toBe('203.0.113.0/24');
    expect(anonymizeIp('10.1.2.255')).toBe('10.1.2.0/24');
  });

  it('treats IPv4-mapped IPv6 as IPv4', () => {
    expect(anonymizeIp('::ffff:198.51.100.9')).toBe('198.51.100.0/24');
    // Every spelling of the same mapped address: not one /48 (0:0:0::/48) shared by all IPv4 clients.
    expect(anonymizeIp('0:0:0:0:0:ffff:198.51.100.10')).toBe('198.51.100.0/24');
    expect(anonymizeIp('::ffff:c633:640b')).toBe('198.51.100.0/24');
    expect(anonymizeIp('0000:0000:0000:0000:0000:FFFF:C633:640C')).toBe('198.51.100.0/24');
  });

  it('keeps only the /48 of an IPv6 address, whatever its spelling', () => {
    expect(anonymizeIp('2001:db8:abcd:12:3456:789a:bcde:f012')).toBe('2001:db8:abcd::/48');
    expect(anonymizeIp('2001:0DB8:ABCD:0012::1')).toBe('2001:db8:abcd::/48');
    expect(anonymizeIp('2001:db8::1')).toBe('2001:db8:0::/48');
    expect(anonymizeIp('::1')).toBe('0:0:0::/48');
    expect(anonymizeIp('fe80::1%eth0')).toBe('fe80:0:0::/48');
    expect(anonymizeIp('64:ff9b::192.0.2.33')).toBe('64:ff9b:0::/48');
  });

  it('treats a 6to4 address (2002::/16) as the IPv4 address its /48 embeds', () => {
    // 2002:c633:644d::/48 is 198.51.100.77 and nothing else: its /48 would keep the whole address.
    expect(anonymizeIp('2002:c633:644d:1::5')).toBe('198.51.100.0/24');
    expect(anonymizeIp('2002:C633:644E::')).toBe('198.51.100.0/24');
  });

  it('gives null for anything that is not an address', () => {
    expect(anonymizeIp('')).toBeNull();
    expect(anonymizeIp(undefined)).toBeNull();
    expect(anonymizeIp('evil.example.com')).toBeNull();
    expect(anonymizeIp('1.2.3.4; drop table')).toBeNull();
  });
});

describe('anonymizeSubject', () => {
  it('replaces the client address of a rate-limit subject with its network, and leaves ids alone', () => {
    expect(anonymizeSubject('ip:203.0.113.77')).toBe('ip:203.0.113.0/24');
    expect(anonymizeSubject('ip:2001:db8:abcd:12::/64')).toBe('ip:2001:db8:abcd::/48');
    expect(anonymizeSubject('k:key_01ABC@203.0.113.77')).toBe('k:key_01ABC@203.0.113.0/24');
    expect(anonymizeSubject('k:key_01ABC')).toBe('k:key_01ABC');
    expect(anonymizeSubject('a:acc_01ABC')).toBe('a:acc_01ABC');
    expect(anonymizeSubject('ip:not-an-address')).toBe('ip:unknown');
  });
});
