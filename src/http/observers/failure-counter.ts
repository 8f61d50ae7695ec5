import type { Services } from '../../services.js';
import type { ResponseObserver } from './types.js';

/**
 * A 4xx answer to a request without valid credentials counts against the client address in the
 * DDoS guard, which blocks an address that produces too many per second. 429s are the rate
 * limiter's own answer and are not counted; authenticated failures are the principal's, not the
 * address's (many keys share one address).
 */
export function failureCounter(services: Services): ResponseObserver {
  return {
    name: 'failureCounter',
    observe(request, reply) {
      const status = reply.statusCode;
      if (status < 400 || status >= 500 || status === 429 || request.principal.kind !== 'anonymous') return;
      services.ddosGuard.clientError(request.clientIp).catch((err: unknown) => request.log.error({ err }, 'ddos guard: failure not counted'));
    },
  };
}
