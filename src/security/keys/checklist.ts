import { bindsAddresses } from '../network/allowlist.js';
import { READ_ONLY_SCOPES, scopesAllowedForRole, type Role, type Scope } from '../rbac/roles.js';
import type { KeyEnvironment } from './format.js';
import { statusOf, type ApiKeyRecord } from './records.js';

export interface ChecklistItem {
  id: 'ip_whitelisting' | 'separate_keys' | 'least_scopes' | 'revocation_tested' | 'request_signing';
  /** The spec's wording ("Before Going Live"). */
  title: string;
  result: 'pass' | 'fail';
  /** What was found, naming the keys concerned. */
  detail: string;
  /** What to do to pass (also given on a pass, as the standing rule). */
  advice: string;
  /** The keys that make the item fail. */
  keyIds: string[];
}

export interface Checklist {
  environment: KeyEnvironment;
  passed: number;
  total: number;
  items: ChecklistItem[];
}

const TRADING_WRITE: readonly Scope[] = ['orders:write', 'positions:write', 'tokens:write'];

function names(keys: readonly ApiKeyRecord[]): string {
  return keys.map((k) => `${k.label} (${k.prefix}…, ${k.id})`).join(', ');
}

function item(base: Omit<ChecklistItem, 'result' | 'detail' | 'keyIds'>, failing: readonly ApiKeyRecord[], passDetail: string, failDetail: string): ChecklistItem {
  return failing.length === 0
    ? { ...base, result: 'pass', detail: passDetail, keyIds: [] }
    : { ...base, result: 'fail', detail: `${failDetail}: ${names(failing)}`, keyIds: failing.map((k) => k.id) };
}

/**
 * The spec's "Before Going Live" list, evaluated on one account's keys. Pure: the route passes
 * the keys, the owner's current role, the server's environment and the time.
 */
export function evaluateChecklist(input: { keys: readonly ApiKeyRecord[]; role: Role; environment: KeyEnvironment; now: number }): Checklist {
  const { keys, role, environment, now } = input;
  // Keys that can still be used (a suspended key comes back when unsuspended).
  const usable = keys.filter((k) => {
    const s = statusOf(k, now);
    return s === 'active' || s === 'suspended';
  });
  const none = usable.length === 0 ? 'No usable keys yet' : undefined;
  const allowed = scopesAllowedForRole(role);

  const unlisted = usable.filter((k) => !bindsAddresses(k.ipWhitelist));
  const ip = item(
    {
      id: 'ip_whitelisting',
      title: 'Enable IP whitelisting for production API keys',
      advice:
        environment === 'live'
          ? 'Give every live key an ipWhitelist of the addresses or CIDR ranges your servers call from (PATCH /api/v1/keys/:id { ipWhitelist }).'
          : 'Give every key an ipWhitelist (PATCH /api/v1/keys/:id { ipWhitelist }); sandbox keys are checked too, so the live setup is rehearsed.',
    },
    unlisted,
    none ?? 'Every usable key is bound to an IP whitelist',
    'Keys usable from any address',
  );

  const foreign = usable.filter((k) => k.environment !== environment);
  const labels = new Map<string, ApiKeyRecord[]>();
  for (const k of usable) labels.set(k.label.toLowerCase(), [...(labels.get(k.label.toLowerCase()) ?? []), k]);
  const shared = [...labels.values()].filter((group) => group.length > 1).flat();
  const separate = item(
    {
      id: 'separate_keys',
      title: 'Set up separate API keys for different environments',
      advice: `Create sandbox keys (${'md_test_'}) on the sandbox server and live keys (${'md_live_'}) on the live one, one key per application, each with its own label, so one can be revoked without stopping the others.`,
    },
    [...foreign, ...shared.filter((k) => !foreign.includes(k))],
    none ?? `Every usable key belongs to this ${environment} server and has a label of its own`,
    'Keys from another environment or sharing one label',
  );

  const tooBroad = usable.filter((k) => {
    const beyondRole = k.scopes.some((s) => !allowed.includes(s));
    const withdrawsAndTrades = k.scopes.includes('withdrawals:write') && k.scopes.some((s) => TRADING_WRITE.includes(s));
    const everything = allowed.some((s) => !READ_ONLY_SCOPES.includes(s)) && allowed.every((s) => k.scopes.includes(s));
    return beyondRole || withdrawsAndTrades || everything;
  });
  const scopes = item(
    {
      id: 'least_scopes',
      title: 'Configure appropriate permission scopes',
      advice:
        'Grant each key only the scopes its application uses (PATCH /api/v1/keys/:id { scopes } narrows them): keep withdrawals on a key of their own, drop scopes your role no longer allows, and avoid keys that hold every scope.',
    },
    tooBroad,
    none ?? 'No key holds every scope, withdrawals are kept apart from trading, and no key holds scopes beyond the role',
    'Keys with broader scopes than needed',
  );

  const revokedOnce = keys.some((k) => k.revokedAt !== null);
  const revocation: ChecklistItem = {
    id: 'revocation_tested',
    title: 'Test emergency key revocation procedures',
    result: revokedOnce ? 'pass' : 'fail',
    detail: revokedOnce ? 'At least one key of this account has been revoked' : 'No key of this account has ever been revoked',
    advice: 'Rehearse: create a throwaway key, use it, revoke it (DELETE /api/v1/keys/:id) and confirm its next request is refused with key_revoked.',
    keyIds: [],
  };

  const unsigned = usable.filter((k) => k.scopes.some((s) => s !== 'market:read') && k.lastSignedAt === null);
  const signing = item(
    {
      id: 'request_signing',
      title: 'Implement request signing for sensitive operations',
      advice:
        'Sign every request beyond market data with X-API-Timestamp and X-API-Signature (HMAC-SHA256 of timestamp + METHOD + path + body, or ed25519); the SDK does it for you. Make one signed request with each key before going live.',
    },
    unsigned,
    none ?? 'Every key that can do more than read market data has made a verified signed request',
    'Keys that have never made a verified signed request',
  );

  const items = [ip, separate, scopes, revocation, signing];
  return { environment, passed: items.filter((i) => i.result === 'pass').length, total: items.length, items };
}
