import type { Services } from '../../services.js';
import { ANONYMOUS } from '../../security/principal.js';
import { normalizeIp } from '../client-address.js';
import type { Stage } from './types.js';

const API_CSP = "default-src 'none'; frame-ancestors 'none'";

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
      reply.header('X-Content-Type-Options', 'nosniff');
      reply.header('X-Frame-Options', 'DENY');
      reply.header('Referrer-Policy', 'no-referrer');
      reply.header('Cache-Control', 'no-store');
      reply.header('Content-Security-Policy', API_CSP);
      if (behindTls || (behindProxy && request.protocol === 'https')) {
        reply.header('Strict-Transport-Security', 'max-age=63072000; includeSubDomains');
      }
    },
  };
}
