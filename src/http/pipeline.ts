import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { accessAuditObserver } from './observers/access-audit.js';
import { accessLogObserver } from './observers/access-log.js';
import { failureCounter } from './observers/failure-counter.js';
import { requestMetricsObserver } from './observers/metrics.js';
import type { ResponseObserver } from './observers/types.js';
import { authenticateStage } from './stages/authenticate.js';
import { authorizeStage } from './stages/authorize.js';
import { drainingStage } from './stages/draining.js';
import { ipBlockStage } from './stages/ip-block.js';
import { plaintextCredentialsStage } from './stages/plaintext-credentials.js';
import { rateLimitStage } from './stages/rate-limit.js';
import { requestContextStage } from './stages/request-context.js';
import type { Stage } from './stages/types.js';

/**
 * Stages run at arrival (onRequest), before the body is even read: the request context (request
 * id, client address, security headers), then a request arriving while the server closes is
 * refused, then a blocked client address (admin or automatic block) is refused before any other
 * work, then (live behind a TLS-terminating proxy) credentials on a hop not reported as HTTPS.
 * None does I/O.
 */
export function arrivalStages(services: Services, draining: () => boolean = () => false): Stage[] {
  const plaintext = plaintextCredentialsStage(services);
  return [
    requestContextStage(services),
    drainingStage(draining),
    ipBlockStage(services),
    // Live behind a TLS-terminating proxy only: credentials on a hop the proxy does not report as HTTPS.
    ...(plaintext ? [plaintext] : []),
  ];
}

/**
 * The security pipeline: every request passes these stages, in this order, before its handler.
 * Cheap refusals come first. Read it top to bottom; this list is the whole story.
 *
 *   onRequest      arrivalStages: request context (request id, client address, security headers),
 *                  then a refusal while the server closes, then the IP block list, before the
 *                  body is read
 *   preValidation  the stages below (the body is parsed and its raw bytes kept, not yet validated)
 *   validation     TypeBox schema of the route (unknown fields refused)
 *   handler        domain code, which returns results; the route turns refusals into problems
 *   onSend         X-API-Server-Time
 *   onResponse     responseObservers: metrics, the access log, the audit trail's access event, the
 *                  failure counter (DDoS guard)
 */
export function securityStages(services: Services): Stage[] {
  return [
    // (ipBlock has already run at arrival: see arrivalStages.)
    // Who is calling: session token (revocation checked in shared state) or API key
    // (key → environment → IP/country → timestamp → signature → replay).
    authenticateStage(services),
    // How often: the category limit per key / account / address, backoff and suspension
    // (before validation and the handler, so refused requests cost nothing more). Before the
    // permission check, so that requests it refuses count too: a caller probing what it may not
    // do meets 429, escalation and suspension, not an endless stream of free 403s.
    rateLimitStage(services),
    // May they: role, then the key's scope and signing requirement, from the permission matrix.
    authorizeStage(),
  ];
}

/** Run after the response is sent, in this order; each is synchronous and never throws. */
export function responseObservers(services: Services): ResponseObserver[] {
  return [
    // Requests and latency by method, route pattern and status (Prometheus).
    requestMetricsObserver(services.metrics),
    // One log line per request: route pattern, never the raw URL.
    accessLogObserver(),
    // The audit trail's access event (anonymized, buffered, sealed in batches): see audit/access.ts.
    accessAuditObserver(services.audit, services.clock),
    // Unauthenticated 4xx per client address, for the DDoS guard.
    failureCounter(services),
  ];
}

/**
 * The hook that runs `stages` in order. Stages that finish synchronously cost no promise; the
 * first one that returns a promise continues the run when it settles. A thrown or rejected
 * ApiError refuses the request with its problem.
 */
export function runStages(stages: readonly Stage[]) {
  return function pipeline(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    let i = 0;
    const next = (): void => {
      try {
        while (i < stages.length) {
          if (reply.sent) return done();
          const pending = stages[i++]!.run(request, reply);
          if (pending !== undefined) {
            pending.then(next, done);
            return;
          }
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    };
    next();
  };
}

/** The onResponse hook that runs every observer; one failing observer never stops the others. */
export function runObservers(observers: readonly ResponseObserver[]) {
  return function observe(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    for (const o of observers) {
      try {
        o.observe(request, reply);
      } catch (err) {
        request.log.error({ err, observer: o.name }, 'response observer failed');
      }
    }
    done();
  };
}
