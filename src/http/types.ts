import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { Permission } from '../security/rbac/roles.js';
import type { Principal } from '../security/principal.js';

/** Rate-limit categories of API.md; each route under /api/v1 belongs to at most one. */
export type RateCategory = 'market' | 'trading' | 'account' | 'tokens';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Every /api route must declare one; the authorize stage consults the permission matrix with it. */
    permission?: Permission;
  }
  interface FastifyRequest {
    principal: Principal;
    /** The body exactly as received (request signatures cover these bytes). */
    rawBody: Buffer | undefined;
    /** Client address: the socket peer, or X-Forwarded-For when the peer is a trusted proxy. */
    clientIp: string;
  }
}

/** The Fastify instance routes are registered on, typed by TypeBox schemas. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;
