import { Type } from '@sinclair/typebox';
import { unwrap } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import { clientContext, sessionPrincipal } from '../client-context.js';
import type { App } from '../types.js';

const SessionView = Type.Object({
  id: Type.String(),
  chain: Type.String(),
  createdAt: Type.Integer(),
  lastUsedAt: Type.Integer({ description: 'Epoch ms, recorded to the minute' }),
  ip: Type.String({ description: 'The client network at sign-in: /24 for IPv4, /48 for IPv6' }),
  userAgent: Type.String(),
  expiresAt: Type.Integer({ description: 'Epoch ms at which the session ends at the latest' }),
  current: Type.Boolean({ description: 'Whether this request was made with this session' }),
});

const SessionParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_]+$' }) }, { additionalProperties: false });

/** The caller's own sign-in sessions (API.md: GET/DELETE /api/v1/security/sessions). */
export function sessionRoutes(app: App, services: Services): void {
  app.get(
    '/api/v1/security/sessions',
    {
      config: { permission: 'self:manage' },
      schema: { tags: ['security'], summary: 'Your live sign-in sessions', security: [{ bearer: [] }], response: { 200: Type.Object({ sessions: Type.Array(SessionView) }) } },
    },
    async (request) => {
      const principal = sessionPrincipal(request);
      const sessions = await services.sessions.list(principal.accountId);
      return { sessions: sessions.map((s) => ({ ...s, current: s.id === principal.sessionId })) };
    },
  );

  app.delete(
    '/api/v1/security/sessions/:id',
    { config: { permission: 'self:manage' }, schema: { tags: ['security'], summary: 'Revoke one of your sessions at once', security: [{ bearer: [] }], params: SessionParams, response: { 204: Type.Null({ description: 'Revoked' }) } } },
    async (request, reply) => {
      const principal = sessionPrincipal(request);
      unwrap(await services.sessions.revoke(principal.accountId, request.params.id, 'user', clientContext(request), { accountId: principal.accountId, sessionId: principal.sessionId }));
      return reply.code(204).send(null);
    },
  );
}
