import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { authenticateStage } from './stages/authenticate.js';
import { authorizeStage } from './stages/authorize.js';
import { failureCounter } from './stages/failure-counter.js';
import { ipBlockStage } from './stages/ip-block.js';
import { rateLimitStage } from './stages/rate-limit.js';
import type { Stage } from './stages/types.js';

/**
 * Stages run at arrival (onRequest), before the body is even read: a blocked client address
 * (admin or automatic block) is refused before any other work, and the check does no I/O.
 */
export function arrivalStages(services: Services): Stage[] {
  return [ipBlockStage(services)];
}

/**
 * The security pipeline: every request passes these stages, in this order, before its handler.
 * Cheap refusals come first. Read it top to bottom; this list is the whole story.
 *
 *   onRequest      request context: request id, client address, security headers;
 *                  then arrivalStages (the IP block list) before the body is read
 *   preValidation  the stages below (the body is parsed and its raw bytes kept, not yet validated)
 *   validation     TypeBox schema of the route (unknown fields refused)
 *   handler        domain code, which returns results; the route turns refusals into problems
 *   onSend         X-API-Server-Time
 *   onResponse     metrics, the access log, the audit log's access event; responseObservers (failures per client address)
 */
export function securityStages(services: Services): Stage[] {
  return [
    // (ipBlock has already run at arrival: see arrivalStages.)
    // Who is calling: session token (revocation checked in shared state) or API key
    // (key → environment → IP/country → timestamp → signature → replay).
    authenticateStage(services),
    // May they: role, then the key's scope and signing requirement, from the permission matrix.
    authorizeStage(),
    // How often: the category limit per key / account / address, backoff and suspension
    // (before validation and the handler, so refused requests cost nothing more).
    rateLimitStage(services),
  ];
}

/** Run after the response is sent: the DDoS guard counts unauthenticated 4xx per client address. */
export function responseObservers(services: Services) {
  return [failureCounter(services)];
}

export function runStages(stages: readonly Stage[]) {
  return async function pipeline(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    for (const stage of stages) {
      await stage.run(request, reply);
      if (reply.sent) return;
    }
  };
}
