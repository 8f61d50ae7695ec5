import { Type } from '@sinclair/typebox';
import { ApiError } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import type { App } from '../types.js';

/** How long one probe of the store and shared state answers /health. */
export const HEALTH_PROBE_REUSE_MS = 1_000;

/** Health, time, JWKS, metrics and the OpenAPI document: public and unauthenticated. */
export function systemRoutes(app: App, services: Services): void {
  // /health is public and, for monitors, outside the rate limits: every call pinging the database
  // and Redis would let an anonymous flood become load on both. One probe serves every caller that
  // arrives while it runs and for a second after it started.
  let probe: { at: number; answer: Promise<{ store: boolean; state: boolean }> } | undefined;
  const readiness = () => {
    const now = services.clock.now();
    if (!probe || now - probe.at >= HEALTH_PROBE_REUSE_MS || now < probe.at) {
      probe = { at: now, answer: Promise.all([services.store.ping().catch(() => false), services.state.ping().catch(() => false)]).then(([store, state]) => ({ store, state })) };
    }
    return probe.answer;
  };

  app.get(
    '/health',
    {
      config: { permission: 'public' },
      schema: { tags: ['system'], summary: 'Ready when the store and shared state answer', response: { 200: Type.Object({ status: Type.Literal('ok'), store: Type.Boolean(), state: Type.Boolean() }) } },
    },
    async () => {
      const { store, state } = await readiness();
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
    {
      config: { permission: 'public' },
      schema: {
        tags: ['identity'],
        summary: 'Public keys that verify access tokens',
        // Only the public members of an RSA JWK are serialized: a private member could never go out.
        response: {
          200: Type.Object({
            keys: Type.Array(Type.Object({ kty: Type.Literal('RSA'), kid: Type.String(), alg: Type.Literal('RS256'), use: Type.Literal('sig'), n: Type.String(), e: Type.String() })),
          }),
        },
      },
    },
    async (_request, reply) => {
      reply.header('Cache-Control', 'public, max-age=60');
      const { keys } = services.signingKeys.jwks(services.clock.now());
      return { keys: keys.map((k) => ({ kty: 'RSA' as const, kid: String(k.kid), alg: 'RS256' as const, use: 'sig' as const, n: String(k.n), e: String(k.e) })) };
    },
  );

  // Live never serves them on the API port: the counters of refusals, blocks and suspensions tell an
  // attacker whether, and how soon, they were noticed. There they need MOONDRAFT_METRICS_PORT (and
  // MOONDRAFT_METRICS_HOST, to listen on a private address only).
  if (services.config.metricsPort === undefined && services.config.env !== 'live') {
    app.get('/metrics', { config: { permission: 'public' }, schema: { hide: true } }, async (_request, reply) => {
      reply.type(services.metrics.registry.contentType);
      return services.metrics.scrape(services.clock.now());
    });
  }

  app.get('/openapi.json', { config: { permission: 'public' }, schema: { hide: true } }, async () => app.swagger());
}
