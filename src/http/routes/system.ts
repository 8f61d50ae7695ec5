import { Type } from '@sinclair/typebox';
import { ApiError } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import type { App } from '../types.js';

/** Health, time, JWKS, metrics and the OpenAPI document: public and unauthenticated. */
export function systemRoutes(app: App, services: Services): void {
  app.get(
    '/health',
    {
      config: { permission: 'public' },
      schema: { tags: ['system'], summary: 'Ready when the store and shared state answer', response: { 200: Type.Object({ status: Type.Literal('ok'), store: Type.Boolean(), state: Type.Boolean() }) } },
    },
    async () => {
      const [store, state] = await Promise.all([services.store.ping(), services.state.ping()]);
      if (!store || !state) {
        throw new ApiError('service_unavailable', `Not ready: ${[!store && 'store', !state && 'shared state'].filter(Boolean).join(' and ')} not answering`);
      }
      return { status: 'ok' as const, store, state };
    },
  );

  app.get(
    '/api/v1/time',
    { config: { permission: 'public' }, schema: { tags: ['system'], summary: 'Server time (epoch ms), for clock-skew correction', response: { 200: Type.Object({ serverTime: Type.Integer() }) } } },
    async () => ({ serverTime: services.clock.now() }),
  );

  app.get(
    '/.well-known/jwks.json',
    { config: { permission: 'public' }, schema: { tags: ['identity'], summary: 'Public keys that verify access tokens' } },
    async (_request, reply) => {
      reply.header('Cache-Control', 'public, max-age=60');
      return services.signingKeys.jwks(services.clock.now());
    },
  );

  if (services.config.metricsPort === undefined) {
    app.get('/metrics', { config: { permission: 'public' }, schema: { hide: true } }, async (_request, reply) => {
      reply.type(services.metrics.registry.contentType);
      return services.metrics.text();
    });
  }

  app.get('/openapi.json', { config: { permission: 'public' }, schema: { hide: true } }, async () => app.swagger());
}
