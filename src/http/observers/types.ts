import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Something that looks at every answered request after the response is sent (onResponse):
 * synchronous, cheap, and never able to change the answer.
 */
export interface ResponseObserver {
  readonly name: string;
  observe(request: FastifyRequest, reply: FastifyReply): void;
}
