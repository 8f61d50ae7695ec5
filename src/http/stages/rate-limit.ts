import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../errors/registry.js';
import { clientGroup } from '../../security/ddos/ip.js';
import { rateLimitHeaders, wholeSeconds } from '../../security/ratelimit/headers.js';
import { categoryOf, DEFAULT_LIMITS, targetFor, type Caller, type RateCategory } from '../../security/ratelimit/policies.js';
import type { Services } from '../../services.js';
import { StateUnavailableError } from '../../state/port.js';
import { authorizationRefusal } from './authorize.js';
import type { Stage } from './types.js';

/**
 * Applies the rate limit the request falls under (security/ratelimit/policies.ts) and reports it
 * in `RateLimit-Policy` and `RateLimit` on every limited response, refusals included. A refusal is
 * 429 `rate_limited` or `temporarily_suspended` with Retry-After in whole seconds, rounded up.
 * Shared state unavailable: trading, account and token requests fail closed (503; a request the
 * permission matrix refuses anyway gets that refusal), others are limited per process. It runs
 * before authorize: see the comments below for whose budget a refused request spends.
 */
export function rateLimitStage(services: Services): Stage {
  return {
    name: 'rateLimit',
    run(request, reply) {
      const path = request.routeOptions.url ?? request.url.split('?', 1)[0]!;
      const p = request.principal;
      // A request without credentials on a route that needs them goes on to authorize's refusal
      // without I/O: the failure counter holds each one against the address (a 429 here would
      // hide a flood from it; a 503 with shared state down would tell the client to retry what
      // only credentials fix). A bare API key (no signature: anyone who saw the key id can send
      // it) that the matrix refuses is counted as the key's unsigned requests are, per key and
      // sending network (below): never the owner's budget, yet never unmetered either (the
      // failure counter does not count requests that carry a known key).
      if (p.kind === 'anonymous' && authorizationRefusal(request.routeOptions.config.permission, p)) return undefined;
      if (p.kind === 'anonymous') return limit(request, reply, path, { kind: 'anonymous', clientGroup: clientGroup(request.clientIp), exempt: services.ddosGuard.isExempt(request.clientIp) });
      // A key's unsigned requests (market data) count per key and per sending network (policies.ts).
      const caller: Caller = p.kind === 'apiKey' ? { kind: 'apiKey', keyId: p.keyId, accountId: p.accountId, ...(p.signed ? {} : { unsignedFrom: clientGroup(request.clientIp) }) } : { kind: 'session', accountId: p.accountId };
      if (categoryOf(path) !== null) return limit(request, reply, path, caller);
      // Authenticated, outside the categories (admin, audit, sandbox): not limited for those the
      // matrix lets in; its refusals count as the caller's account requests, so that probing the
      // admin routes meets 429s and suspension too.
      return authorizationRefusal(request.routeOptions.config.permission, p) ? limit(request, reply, path, caller, 'account') : undefined;
    },
  };

  async function limit(request: FastifyRequest, reply: FastifyReply, path: string, caller: Caller, category?: RateCategory): Promise<void> {
    const limits = caller.kind === 'anonymous' ? DEFAULT_LIMITS : (services.partnerLimits.cachedLimitsFor(caller.accountId) ?? (await services.partnerLimits.limitsFor(caller.accountId)));
    const target = targetFor(path, caller, limits, services.config.rateLimit, category);
    if (!target) return;

    let d;
    try {
      d = await services.rateLimiter.hit(target, { ip: request.clientIp, requestId: request.id });
    } catch (err) {
      // Shared state unavailable (a 503 to retry): a request the matrix refuses anyway gets that
      // refusal instead, since no retry could make it succeed.
      throw (err instanceof StateUnavailableError && authorizationRefusal(request.routeOptions.config.permission, request.principal)) || err;
    }
    const headers = rateLimitHeaders(target.policy.name, target.policy.limit, target.policy.windowMs, d.remaining, d.nextQuotaMs);
    reply.headers(headers);
    if (d.outcome === 'allowed') return;
    const retryAfter = Math.max(1, wholeSeconds(d.retryAfterMs));
    const detail =
      d.outcome === 'suspended'
        ? `Requests in the ${target.policy.name} category are suspended after sustained excess; retry after ${retryAfter} s`
        : `More than ${target.policy.limit} ${target.policy.name} requests per second; retry after ${retryAfter} s`;
    throw new ApiError(d.outcome === 'suspended' ? 'temporarily_suspended' : 'rate_limited', detail, {
      headers: { ...headers, 'Retry-After': String(retryAfter) },
      extra: { retryAfter },
    });
  }
}
