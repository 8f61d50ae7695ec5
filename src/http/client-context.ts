import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors/registry.js';
import type { Principal } from '../security/principal.js';
import type { ClientContext } from '../security/identity/sessions.js';

/** Where a request came from, for sessions and security events. */
export function clientContext(request: FastifyRequest): ClientContext {
  const ua = request.headers['user-agent'];
  return { ip: request.clientIp, userAgent: typeof ua === 'string' ? ua : undefined, requestId: request.id };
}

/** The caller's session; routes declaring a session-only permission always have one. */
export function sessionPrincipal(request: FastifyRequest): Extract<Principal, { kind: 'session' }> {
  const p = request.principal;
  if (p.kind !== 'session') throw new ApiError('session_required', 'This operation needs a signed-in session');
  return p;
}
