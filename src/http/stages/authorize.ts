import { ApiError } from '../../errors/registry.js';
import type { Principal } from '../../security/principal.js';
import { permissionRule, type Permission } from '../../security/rbac/roles.js';
import type { Stage } from './types.js';

/**
 * Consults the permission matrix for the route's declared permission: the caller's role first,
 * then (for API keys) the key's scope and whether the request had to be signed.
 */
export function authorizeStage(): Stage {
  return {
    name: 'authorize',
    run(request) {
      const refused = authorizationRefusal(request.routeOptions.config.permission, request.principal);
      if (refused) throw refused;
    },
  };
}

/** Why the matrix refuses `principal` the route's `permission`, or undefined when it may proceed. */
export function authorizationRefusal(permission: Permission | undefined, principal: Principal): ApiError | undefined {
  // Routes outside /api (docs assets, the 404 handler) are public; every /api route declares a
  // permission or the server refuses to start (see server.ts, onRoute).
  if (permission === 'public' || permission === undefined) return undefined;
  if (principal.kind === 'anonymous') return new ApiError('unauthenticated', 'Sign in (Bearer token) or use an API key');
  const rule = permissionRule(permission);
  if (!rule.roles.includes(principal.role)) {
    return new ApiError('forbidden_role', `The ${principal.role} role may not perform ${permission}`);
  }
  if (principal.kind === 'apiKey') {
    if (rule.scope === null) return new ApiError('session_required', 'This operation needs a signed-in session; API keys cannot perform it');
    if (!principal.scopes.includes(rule.scope)) return new ApiError('insufficient_scope', `The key needs the ${rule.scope} scope`, { extra: { requiredScope: rule.scope } });
    if (!principal.signed && !('unsignedKeyAllowed' in rule && rule.unsignedKeyAllowed)) {
      return new ApiError('signature_required', 'Sign this request (X-API-Timestamp and X-API-Signature)');
    }
  }
  return undefined;
}
