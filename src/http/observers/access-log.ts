import { elapsedMs } from './timing.js';
import type { ResponseObserver } from './types.js';

/** One access log line per request: method, route pattern (never the raw URL), status, latency. */
export function accessLogObserver(): ResponseObserver {
  return {
    name: 'accessLog',
    observe(request, reply) {
      request.log.info({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: reply.statusCode, ms: Math.round(elapsedMs(reply) * 100) / 100 }, 'request');
    },
  };
}
