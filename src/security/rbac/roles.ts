/**
 * The one permission matrix. Every route declares the permission it needs (route `config.permission`);
 * the authorize stage consults this table and nothing else. A role change therefore applies to the
 * account's very next request, for its sessions and all its API keys alike.
 */
export const ROLES = ['trader', 'developer', 'admin', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export const SCOPES = [
  'market:read',
  'account:read',
  'orders:read',
  'portfolio:read',
  'orders:write',
  'positions:write',
  'withdrawals:write',
  'tokens:write',
  'webhooks:write',
] as const;
export type Scope = (typeof SCOPES)[number];

export const READ_ONLY_SCOPES: readonly Scope[] = ['market:read', 'account:read', 'orders:read', 'portfolio:read'];

interface PermissionRule {
  /** Roles that may perform it. */
  roles: readonly Role[];
  /** The API-key scope it needs; `null` means a signed-in session only (never an API key). */
  scope: Scope | null;
  /** Market data needs only `X-API-Key`; everything else an API key does must be signed. */
  unsignedKeyAllowed?: boolean;
}

const ALL: readonly Role[] = ROLES;
const TRADING: readonly Role[] = ['trader', 'admin'];
const READERS: readonly Role[] = ['trader', 'developer', 'admin'];

export const PERMISSIONS = {
  'market:read': { roles: ALL, scope: 'market:read', unsignedKeyAllowed: true },
  'account:read': { roles: ALL, scope: 'account:read' },
  'orders:read': { roles: READERS, scope: 'orders:read' },
  'portfolio:read': { roles: READERS, scope: 'portfolio:read' },
  'orders:write': { roles: TRADING, scope: 'orders:write' },
  'positions:write': { roles: TRADING, scope: 'positions:write' },
  'withdrawals:write': { roles: TRADING, scope: 'withdrawals:write' },
  'tokens:write': { roles: TRADING, scope: 'tokens:write' },
  'webhooks:write': { roles: READERS, scope: 'webhooks:write' },
  /** Own sessions and API keys: see, sign out, revoke. A signed-in person only. */
  'self:manage': { roles: ALL, scope: null },
  /**
   * Create, change or regenerate one's own API keys: a signed-in person only, and not an auditor,
   * whose role changes nothing but may still list and revoke keys it held before.
   */
  'keys:write': { roles: READERS, scope: null },
  /** Sandbox faucet: people who may trade, or their trading keys. */
  'sandbox:faucet': { roles: TRADING, scope: 'orders:write' },
  'admin:read': { roles: ['admin'], scope: null },
  'admin:write': { roles: ['admin'], scope: null },
  'audit:read': { roles: ['auditor'], scope: null },
} as const satisfies Record<string, PermissionRule>;

/** `public` routes need no credentials at all. */
export type Permission = keyof typeof PERMISSIONS | 'public';

export function permissionRule(p: Exclude<Permission, 'public'>): PermissionRule {
  return PERMISSIONS[p];
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

export function isScope(value: unknown): value is Scope {
  return typeof value === 'string' && (SCOPES as readonly string[]).includes(value);
}

/** The scopes a role may hold: a key's scopes are capped by these at creation and at every request. */
export function scopesAllowedForRole(role: Role): readonly Scope[] {
  let scopes = allowedScopes.get(role);
  if (scopes === undefined) {
    const out = new Set<Scope>();
    for (const rule of Object.values(PERMISSIONS) as PermissionRule[]) {
      if (rule.scope && rule.roles.includes(role)) out.add(rule.scope);
    }
    scopes = Object.freeze(SCOPES.filter((s) => out.has(s)));
    allowedScopes.set(role, scopes);
  }
  return scopes;
}
/** The matrix is constant: each role's scopes are worked out once (every API-key request asks). */
const allowedScopes = new Map<Role, readonly Scope[]>();
