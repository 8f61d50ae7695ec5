import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import { ANONYMOUS, type Principal } from '../../security/principal.js';
import { isRole } from '../../security/rbac/roles.js';
import { sessionStateKeys } from '../../security/identity/revocation.js';
import { StateUnavailableError } from '../../state/port.js';
import type { Stage } from './types.js';

/**
 * The scheme name is case-insensitive (RFC 9110 §11.1): `bearer …` is the same credential; and one
 * or more spaces separate it from the token (RFC 6750 §2.1: `"Bearer" 1*SP b64token`).
 */
const BEARER = /^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;

/**
 * Whether the request carries Authorization more than once. Node keeps the first such line and
 * drops the others without a word, so `request.headers` cannot tell: a request with two credentials
 * (one a proxy or another layer may read instead) would be authenticated as the first.
 */
function repeatedAuthorization(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 13 || name.toLowerCase() !== 'authorization') continue;
    if (seen) return true;
    seen = true;
  }
  return false;
}

/**
 * Establishes `request.principal`: a session (Bearer access token) or an API key (X-API-Key,
 * verified by the API-key authenticator), or anonymous. Public routes skip it entirely.
 */
export function authenticateStage(services: Services): Stage {
  return {
    name: 'authenticate',
    run(request) {
      const permission = request.routeOptions.config.permission;
      if (permission === 'public' || permission === undefined) return;
      const authorization = request.headers.authorization;
      const apiKey = request.headers['x-api-key'];
      if (authorization !== undefined && apiKey !== undefined) {
        throw new ApiError('validation_failed', 'Send either Authorization or X-API-Key, not both');
      }
      if (authorization !== undefined) {
        if (repeatedAuthorization(request.raw.rawHeaders)) throw refuse(services, request, 'invalid_token', 'Send one Authorization header, not several');
        return authenticateSession(services, request, authorization).then((principal) => {
          request.principal = principal;
        });
      }
      if (apiKey !== undefined) {
        if (!services.apiKeyAuthenticator) throw new ApiError('invalid_api_key', 'API keys are not accepted by this server');
        return services.apiKeyAuthenticator.authenticate(request, Array.isArray(apiKey) ? apiKey.join(',') : apiKey).then((principal) => {
          request.principal = principal;
        });
      }
      request.principal = ANONYMOUS;
      return undefined;
    },
  };
}

/**
 * A refused session token. Every refusal is a security event, as for API keys: a garbled token
 * counts as guessing, and a revoked session's token still in use (a stale tab, or a thief after
 * logout) is recorded.
 */
function refuse(services: Services, request: FastifyRequest, code: 'invalid_token' | 'token_expired' | 'token_revoked', detail: string, accountId?: string): ApiError {
  services.events.emit({ type: 'auth.failed', code, at: services.clock.now(), accountId, ip: request.clientIp, requestId: request.id });
  return new ApiError(code, detail);
}

async function authenticateSession(services: Services, request: FastifyRequest, authorization: string): Promise<Principal> {
  // A token this process verified before skips the format and signature checks (a cache keyed by
  // the token's SHA-256: only the very same string hits).
  const presented = authorization.startsWith('Bearer ') || authorization.slice(0, 7).toLowerCase() === 'bearer ' ? authorization.slice(7) : '';
  let claims = services.accessTokens.verifiedBefore(presented);
  if (!claims) {
    const m = BEARER.exec(authorization);
    if (!m) throw refuse(services, request, 'invalid_token', 'Authorization must be "Bearer <access token>"');
    const verified = await services.accessTokens.verify(m[1]!);
    if (!verified.ok) throw refuse(services, request, verified.code, verified.detail);
    claims = verified.value;
  }
  // Revocation and role changes live in shared state, so they reach every process at once
  // without a database read on this path. Read with this process's security-sync marker: shared
  // state that lost them (Redis restarted empty) answers "not revoked" and no role of its own, so
  // the security sync puts them back before they are believed (see SecuritySync.holds).
  const keys = sessionStateKeys(claims.sid, claims.sub);
  const sync = services.securitySync;
  const read = () => services.state.getMany([keys.revoked, keys.role, sync.markerKey]);
  let [revoked, roleOverride, marker] = await read();
  if (!sync.holds(marker ?? null)) {
    await sync.restore();
    [revoked, roleOverride, marker] = await read();
    if (!sync.holds(marker ?? null)) throw new StateUnavailableError('shared state lost the session revocations and roles, which the security sync could not yet restore');
  }
  if (revoked !== null) throw refuse(services, request, 'token_revoked', 'This session was revoked; sign in again', claims.sub);
  // The role in shared state (set by a role change) wins over the token's. One this server cannot
  // read refuses the session: falling back to the token's role would keep rights a demotion took.
  if (roleOverride !== null && !isRole(roleOverride)) throw refuse(services, request, 'invalid_token', 'The account has a role this server does not know', claims.sub);
  const role = roleOverride ?? claims.role;
  if (!isRole(role)) throw refuse(services, request, 'invalid_token', 'The token carries an unknown role', claims.sub);
  // "Last used" for the sessions list: recorded in memory now, written later in a batch.
  services.sessions.touch(claims.sid);
  return {
    kind: 'session',
    accountId: claims.sub,
    wallet: claims.wallet,
    role,
    sessionId: claims.sid,
    tokenId: claims.jti,
    authTime: claims.auth_time,
    tokenExpiresAt: claims.exp,
  };
}
