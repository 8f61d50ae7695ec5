import { ApiError } from '../../errors/registry.js';
import type { Stage } from './types.js';

/**
 * Once the server has begun to close, a request that still arrives (pipelined, or on a kept-alive
 * connection) is refused with 503 `service_unavailable` and `Connection: close`, so the client or
 * load balancer retries elsewhere; requests already in flight finish. Fastify's own answer to this
 * case is a bare JSON body without the headers every response carries.
 */
export function drainingStage(draining: () => boolean): Stage {
  return {
    name: 'draining',
    run() {
      if (!draining()) return;
      throw new ApiError('service_unavailable', 'The server is shutting down; retry the request', { headers: { 'Retry-After': '1', Connection: 'close' } });
    },
  };
}
