import type { Services } from '../../services.js';
import { ANONYMOUS } from '../../security/principal.js';
import { normalizeIp } from '../client-address.js';
import type { Stage } from './types.js';

/** The security headers every answer carries (HSTS aside: only behind TLS). */
export const SECURITY_HEADERS: readonly (readonly [name: string, value: string])[] = [
  ['X-Content-Type-Options', 'nosniff'],
  ['X-Frame-Options', 'DENY'],
  ['Referrer-Policy', 'no-referrer'],
  ['Cache-Control', 'no-store'],
  ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
];
export const HSTS = ['Strict-Transport-Security', 'max-age=63072000; includeSubDomains'] as const;

/**
 * The request context, before anything else: an anonymous principal until authentication says
 * otherwise, the client address, and the headers every answer carries (request id, security headers;
 * HSTS behind TLS). Does no I/O and never refuses.
 */
export function requestContextStage(services: Services): Stage {
  const { config } = services;
  const behindTls = config.tls !== undefined;
  const behindProxy = config.trustedProxies.length > 0;
  return {
    name: 'requestContext',
    run(request, reply) {
      request.principal = ANONYMOUS;
      request.clientIp = normalizeIp(request.ip);
      reply.header('X-Request-Id', request.id);
      for (const [name, value] of SECURITY_HEADERS) reply.header(name, value);
      if (behindTls || (behindProxy && request.protocol === 'https')) reply.header(HSTS[0], HSTS[1]);
    },
  };
}
