import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * One step of the security pipeline. A stage either returns (the request goes on) or throws an
 * ApiError (the request is refused with that problem). Stages run in the order pipeline.ts lists.
 */
export interface Stage {
  readonly name: string;
  run(request: FastifyRequest, reply: FastifyReply): void | Promise<void>;
}
