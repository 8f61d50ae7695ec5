import type { FastifyReply, FastifyRequest } from 'fastify';
import { anonymizeIp } from './anonymize.js';
import type { AuditEvent, AuditOutcome } from './events.js';

/** Routes outside the API whose requests are not audited (probes and documentation). */
export function audited(route: string | undefined): boolean {
  return route === undefined || route.startsWith('/api/');
}

function outcomeOf(status: number): AuditOutcome {
  if (status < 400) return 'success';
  if (status === 401 || status === 403 || status === 429) return 'denied';
  return 'failure';
}

/**
 * The access event of one request: time, account, key id, route pattern (never the raw URL or
 * its query string), status, latency and the client network (/24 or /48), never headers, bodies
 * or credentials. Requests that matched no route are recorded as `unmatched` (probing shows up).
 */
export function accessEvent(request: FastifyRequest, reply: FastifyReply, now: number): AuditEvent | null {
  const route = request.routeOptions.url;
  if (!audited(route)) return null;
  const p = request.principal;
  const ua = request.headers['user-agent'];
  return {
    type: 'access.request',
    at: now,
    accountId: p && p.kind !== 'anonymous' ? p.accountId : null,
    outcome: outcomeOf(reply.statusCode),
    ip: anonymizeIp(request.clientIp || request.ip),
    userAgent: typeof ua === 'string' ? ua : null,
    requestId: request.id,
    details: {
      method: request.method,
      route: route ?? 'unmatched',
      status: reply.statusCode,
      latencyMs: Math.round(reply.elapsedTime * 100) / 100,
      keyId: p?.kind === 'apiKey' ? p.keyId : undefined,
      sessionId: p?.kind === 'session' ? p.sessionId : undefined,
    },
  };
}
