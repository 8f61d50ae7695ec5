import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { authenticateStage } from './stages/authenticate.js';
import { authorizeStage } from './stages/authorize.js';
import type { Stage } from './stages/types.js';

/**
 * The security pipeline: every request passes these stages, in this order, before its handler.
 * Cheap refusals come first. Read it top to bottom; this list is the whole story.
 *
 *   onRequest      request context: request id, client address, security headers
 *   preValidation  the stages below (the body is parsed and its raw bytes kept, not yet validated)
 *   validation     TypeBox schema of the route (unknown fields refused)
 *   handler        domain code, which returns results; the route turns refusals into problems
 *   onSend         X-API-Server-Time
 *   onResponse     metrics, the access log, and the audit log's access event
 */
export function securityStages(services: Services): Stage[] {
  return [
    // Who is calling: session token (revocation checked in shared state) or API key
    // (key → environment → IP/country → timestamp → signature → replay).
    authenticateStage(services),
    // May they: role, then the key's scope and signing requirement, from the permission matrix.
    authorizeStage(),
  ];
}

export function runStages(stages: readonly Stage[]) {
  return async function pipeline(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    for (const stage of stages) {
      await stage.run(request, reply);
      if (reply.sent) return;
    }
  };
}
