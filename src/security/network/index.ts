export { canonicalAllowlistEntry, IpAllowlist, MAX_ALLOWLIST_ENTRIES } from './allowlist.js';
export { bundledCountryDatabase, canonicalCountryCode, MaxmindCountryLookup, openCountryLookup, type CountryLookup } from './countries.js';
