import type { FastifyReply } from 'fastify';

/** When the server took up a request that Fastify itself does not time (performance.now(), ms). */
const TAKEN_UP = Symbol('takenUp');

/**
 * Marks the moment a request Fastify does not time was taken up: one whose path the router could
 * not decode (`frameworkErrors`) is answered before Fastify starts its reply clock, and its
 * `elapsedTime` reads 0 however long the answer took.
 */
export function markTakenUp(reply: FastifyReply): void {
  (reply as FastifyReply & { [TAKEN_UP]?: number })[TAKEN_UP] = performance.now();
}

/**
 * How long the request took, in ms: Fastify's own measure (until the response finished), or, for a
 * request marked by markTakenUp, from that mark until now (its observers run once it is answered).
 */
export function elapsedMs(reply: FastifyReply): number {
  const takenUp = (reply as FastifyReply & { [TAKEN_UP]?: number })[TAKEN_UP];
  return takenUp === undefined ? reply.elapsedTime : performance.now() - takenUp;
}
