import { createRequire } from 'node:module';
import { BlockList, isIP } from 'node:net';
import path from 'node:path';
import maxmind, { type Reader, type Response } from 'maxmind';
import { normalizeIp } from '../../http/client-address.js';

/** The geo-lookup port: the ISO 3166-1 alpha-2 country of an address, or undefined when unknown. */
export interface CountryLookup {
  countryOf(ip: string): string | undefined;
}

/**
 * The two MMDB layouts read: ip-location-db's flat `{ country_code }` (the bundled database), and
 * MaxMind's GeoIP2 / GeoLite2 Country `{ country: { iso_code } }`. MaxMind's `registered_country`
 * (where the network's owner registered it) is not the address's location and is never used.
 */
interface CountryRecord {
  country_code?: unknown;
  country?: { iso_code?: unknown };
}

/** The bundled CC0/CC-BY country database (IPv4 and IPv6 in one file). */
export function bundledCountryDatabase(): string {
  const require = createRequire(import.meta.url);
  const dir = path.dirname(require.resolve('@ip-location-db/geo-whois-asn-country-mmdb/package.json'));
  return path.join(dir, 'geo-whois-asn-country.mmdb');
}

/**
 * Special-purpose ranges (RFC 6890 and successors): private, loopback, link-local, shared, test and
 * multicast addresses have no country. The bundled database wrongly places some of them (it puts
 * 192.168.0.0/16 in AU), and a country rule must never be met by an address anyone can claim.
 */
// One list per family: node:net matches an IPv4 address against IPv6 rules through its mapped form
// (::ffff:a.b.c.d), which ::/8 would contain.
const NO_COUNTRY = { ipv4: new BlockList(), ipv6: new BlockList() };
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NO_COUNTRY.ipv4.addSubnet(net, bits, 'ipv4');
// ::/8 is reserved (RFC 4291): unspecified, loopback, NAT64 64:ff9b::/96 and the deprecated
// IPv4-compatible ::a.b.c.d, which MMDB files would locate as the IPv4 host, since they keep IPv4
// under ::/96. IPv4-mapped ::ffff:a.b.c.d is looked up as IPv4 (normalised before this list).
for (const [net, bits] of [
  ['::', 8], ['::', 127], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32], ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8],
] as const) NO_COUNTRY.ipv6.addSubnet(net, bits, 'ipv6');

/** Whether an address is special-purpose (never located in a country). */
export function isSpecialPurpose(ip: string): boolean {
  const address = normalizeIp(ip);
  const family = isIP(address);
  if (family === 0) return true;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  return NO_COUNTRY[type].check(address, type);
}

/** Country lookup over an MMDB file with the `maxmind` reader (its lookups are synchronous and cached). */
export class MaxmindCountryLookup implements CountryLookup {
  constructor(private readonly reader: Reader<Response>) {}

  countryOf(ip: string): string | undefined {
    const address = normalizeIp(ip);
    if (isSpecialPurpose(address)) return undefined;
    try {
      const record = this.reader.get(address) as CountryRecord | null;
      const code = record?.country_code ?? record?.country?.iso_code;
      return typeof code === 'string' && /^[A-Z]{2}$/.test(code) ? code : undefined;
    } catch {
      return undefined; // not an IP address
    }
  }
}

// The database is immutable for the life of the process: open each file once, however many
// server instances (tests start several) ask for it.
const opened = new Map<string, Promise<MaxmindCountryLookup>>();

/** Opens (once per process) the MMDB file; the bundled database unless `file` names another. */
export function openCountryLookup(file: string = bundledCountryDatabase()): Promise<CountryLookup> {
  const resolved = path.resolve(file);
  let lookup = opened.get(resolved);
  if (!lookup) {
    lookup = maxmind.open<Response>(resolved, { cache: { max: 10_000 } }).then((reader) => new MaxmindCountryLookup(reader));
    lookup.catch(() => opened.delete(resolved));
    opened.set(resolved, lookup);
  }
  return lookup;
}

/**
 * The 249 officially assigned ISO 3166-1 alpha-2 codes, and the codes country databases give
 * beside them: XK (Kosovo, as MaxMind gives it), EU and AP (networks the regional registries list
 * for a whole region). A rule naming anything else (`UK` for GB, a typo) would be met by no address
 * and refuse every request without saying why: it is refused when set.
 */
const COUNTRY_CODES: ReadonlySet<string> = new Set(
  [
    'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ',
    'BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR',
    'CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR',
    'GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU',
    'ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ',
    'LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ',
    'MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF',
    'PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI',
    'SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR',
    'TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW',
  ]
    .join(' ')
    .split(' ')
    .concat(['XK', 'EU', 'AP']),
);

/** An upper-case ISO 3166-1 alpha-2 code (see COUNTRY_CODES), or undefined when `code` is not one. */
export function canonicalCountryCode(code: string): string | undefined {
  const upper = code.trim().toUpperCase();
  return COUNTRY_CODES.has(upper) ? upper : undefined;
}
