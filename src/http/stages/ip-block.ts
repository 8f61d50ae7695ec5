import { ApiError } from '../../errors/registry.js';
import { wholeSeconds } from '../../security/ratelimit/headers.js';
import type { Services } from '../../services.js';
import type { Stage } from './types.js';

const BLOCKED = Symbol('refusedByBlock');

/** Whether the IP block list refused this request (at arrival, or for a path the router could not read). */
export function refusedByBlock(request: object): boolean {
  return (request as { [BLOCKED]?: true })[BLOCKED] === true;
}

/**
 * Refuses a blocked client address before anything else runs (no token check, no key lookup, no
 * body validation). The block list is an in-process mirror: this stage does no I/O.
 */
export function ipBlockStage(services: Services): Stage {
  return {
    name: 'ipBlock',
    run(request) {
      const block = services.ipBlocks.check(request.clientIp);
      if (!block) return;
      services.ipBlocks.countRefusal();
      (request as { [BLOCKED]?: true })[BLOCKED] = true;
      const headers: Record<string, string> = {};
      if (block.expiresAt !== null) headers['Retry-After'] = String(Math.max(1, wholeSeconds(block.expiresAt - services.clock.now())));
      throw new ApiError('ip_blocked', block.expiresAt === null ? 'Requests from this address are blocked' : 'Requests from this address are blocked for a while', { headers });
    },
  };
}
