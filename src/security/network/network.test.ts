import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../config/index.js';
import { canonicalAllowlistEntry, IpAllowlist } from './allowlist.js';
import type { Reader, Response } from 'maxmind';
import { bundledCountryDatabase, canonicalCountryCode, MaxmindCountryLookup, openCountryLookup } from './countries.js';

describe('allowlist entries', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    [' 10.0.0.0/8 ', '10.0.0.0/8'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8::/32', '2001:db8::/32'],
    ['::ffff:198.51.100.4', '198.51.100.4'],
    ['::FFFF:c633:6404', '198.51.100.4'],
    ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
    ['1.2.3.4/032', '1.2.3.4/32'],
  ])('%s → %s', (entry, canonical) => {
    expect(canonicalAllowlistEntry(entry)).toBe(canonical);
  });

  it.each(['', 'localhost', '1.2.3', '1.2.3.4/33', '2001:db8::/129', '1.2.3.4/8/1', '1.2.3.4/', '1.2.3.4/-1', '01.2.3.4', 'fe80::1%eth0'])('refuses %j', (entry) => {
    expect(canonicalAllowlistEntry(entry)).toBeUndefined();
  });
});

describe('IpAllowlist', () => {
  it('matches exact addresses and CIDR ranges, IPv4 and IPv6', () => {
    const list = new IpAllowlist(['203.0.113.7', '10.0.0.0/8', '2001:db8::/32', '2001:db8:ffff::1']);
    expect(list.allows('203.0.113.7')).toBe(true);
    expect(list.allows('203.0.113.8')).toBe(false);
    expect(list.allows('10.255.1.2')).toBe(true);
    expect(list.allows('11.0.0.1')).toBe(false);
    expect(list.allows('2001:db8:1::5')).toBe(true);
    expect(list.allows('2001:0DB8:0000::5')).toBe(true);
    expect(list.allows('2001:db9::1')).toBe(false);
  });

  it('normalises IPv4-mapped IPv6 on both sides', () => {
    expect(new IpAllowlist(['10.0.0.0/8']).allows('::ffff:10.1.2.3')).toBe(true);
    expect(new IpAllowlist(['::ffff:192.0.2.1']).allows('192.0.2.1')).toBe(true);
    expect(new IpAllowlist(['192.0.2.1']).allows('::ffff:192.0.2.2')).toBe(false);
  });

  it('matches IPv4 clients against IPv4 entries only: an IPv6 range never covers the whole IPv4 internet', () => {
    // ::/16 (or ::/0, ::ffff:0:0/95) contains the IPv4-mapped block ::ffff:0:0/96; node:net's
    // BlockList matches every IPv4 address against it. Clients arrive normalised to IPv4, so such an
    // entry would let every IPv4 address through while looking like a narrow IPv6 binding.
    for (const entry of ['::/16', '::/0', '::ffff:0:0/95', '::/64']) {
      const list = new IpAllowlist([entry]);
      expect(list.allows('203.0.113.5'), entry).toBe(false);
      expect(list.allows('::ffff:203.0.113.5'), entry).toBe(false);
    }
    expect(new IpAllowlist(['::/16']).allows('::1:2')).toBe(true);
    expect(new IpAllowlist(['0.0.0.0/1']).allows('::1')).toBe(false);
  });

  it('fails closed on a stored entry it cannot read: a whitelist that is not empty never allows every address', () => {
    // Entries are checked on the way in, but a row written by another version or by hand may hold
    // one this version does not read; skipping it must not turn the list into "any address".
    expect(new IpAllowlist(['fe80::1%eth0']).allows('198.51.100.1')).toBe(false);
    expect(new IpAllowlist(['not an address']).allows('198.51.100.1')).toBe(false);
    expect(new IpAllowlist(['garbage', '198.51.100.1']).allows('198.51.100.1')).toBe(true);
  });

  it('allows any address when empty and refuses what is not an address', () => {
    expect(new IpAllowlist([]).allows('198.51.100.1')).toBe(true);
    expect(new IpAllowlist(['10.0.0.0/8']).allows('not-an-ip')).toBe(false);
    expect(new IpAllowlist(['10.0.0.0/8']).allows('')).toBe(false);
  });
});

describe('country lookup over the bundled database', async () => {
  const countries = await openCountryLookup();

  it('knows public addresses, IPv4, IPv6 and IPv4-mapped', () => {
    expect(countries.countryOf('8.8.8.8')).toBe('US');
    expect(countries.countryOf('81.2.69.142')).toBe('GB');
    expect(countries.countryOf('::ffff:8.8.8.8')).toBe('US');
    expect(countries.countryOf('2a00:1450:4001::1')).toMatch(/^[A-Z]{2}$/);
  });

  it('has no country for private, loopback or malformed addresses', () => {
    // The bundled data places some private ranges in a country; they must stay unknown.
    for (const ip of ['127.0.0.1', '10.1.2.3', '192.168.1.1', '172.16.0.1', '203.0.113.5', '::ffff:192.168.1.1', '::1', 'fd00::1', 'fe80::1', 'garbage']) {
      expect(countries.countryOf(ip), ip).toBeUndefined();
    }
  });

  it('has no country for an IPv6 address in ::/8 (reserved): IPv4-compatible ::a.b.c.d is not the IPv4 host', () => {
    // MMDB files keep IPv4 under ::/96 of their IPv6 tree, so ::808:808 (::8.8.8.8, deprecated
    // IPv4-compatible, not routable) would be "located" where 8.8.8.8 is: any host able to use such
    // a source address (on a LAN, or through a careless proxy) would meet a country rule.
    for (const ip of ['::8.8.8.8', '::808:808', '::51.2.69.142', '::1:0:808:808']) {
      expect(countries.countryOf(ip), ip).toBeUndefined();
    }
    expect(countries.countryOf('::ffff:8.8.8.8')).toBe('US');
  });

  it('is opened once per process', async () => {
    expect(await openCountryLookup()).toBe(countries);
  });

  it('accepts ISO alpha-2 codes in either case', () => {
    expect(canonicalCountryCode('gb')).toBe('GB');
    expect(canonicalCountryCode('GBR')).toBeUndefined();
    expect(canonicalCountryCode('1A')).toBeUndefined();
    // Two letters that no address is ever located in: UK (GB is the code), unassigned XX, ZZ.
    for (const code of ['UK', 'XX', 'ZZ', 'AA', 'SU']) expect(canonicalCountryCode(code), code).toBeUndefined();
    for (const code of ['US', 'AQ', 'XK', 'EU', 'AP', 'ZW']) expect(canonicalCountryCode(code), code).toBe(code);
  });
});

describe('MOONDRAFT_GEOIP_DB', () => {
  it('names the variable when the file does not exist', () => {
    expect(() => loadConfig({ MOONDRAFT_GEOIP_DB: '/nonexistent/geo.mmdb' })).toThrow(ConfigError);
    expect(() => loadConfig({ MOONDRAFT_GEOIP_DB: '/nonexistent/geo.mmdb' })).toThrow(/^MOONDRAFT_GEOIP_DB: no such file/);
  });

  it('reads MaxMind GeoIP2 / GeoLite2 Country records too (country.iso_code), never the registered country', () => {
    // A stand-in reader returning records in MaxMind's own layout (no such file ships with the repo).
    const records: Record<string, unknown> = {
      '81.2.69.142': { country: { iso_code: 'GB', names: { en: 'United Kingdom' } }, registered_country: { iso_code: 'GB' } },
      '2.125.160.216': { registered_country: { iso_code: 'FR' } }, // no located country: unknown
      '89.160.20.112': { country: { iso_code: 'se' } }, // not upper-case alpha-2: unknown
    };
    const lookup = new MaxmindCountryLookup({ get: (ip: string) => records[ip] ?? null } as unknown as Reader<Response>);
    expect(lookup.countryOf('81.2.69.142')).toBe('GB');
    expect(lookup.countryOf('2.125.160.216')).toBeUndefined();
    expect(lookup.countryOf('89.160.20.112')).toBeUndefined();
    expect(lookup.countryOf('10.0.0.1')).toBeUndefined();
  });

  it('opens another MMDB file of the same format when given', async () => {
    const c = loadConfig({ MOONDRAFT_GEOIP_DB: bundledCountryDatabase().replace('.mmdb', '-ipv4.mmdb') });
    const lookup = await openCountryLookup(c.keys.geoipFile);
    expect(lookup.countryOf('81.2.69.142')).toBe('GB');
  });
});
