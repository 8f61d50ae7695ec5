import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyServerOptions } from 'fastify';
import { accessAuditHook } from '../audit/access.js';
import type { Services } from '../services.js';
import { ANONYMOUS } from '../security/principal.js';
import { normalizeIp } from './client-address.js';
import { arrivalStages, responseObservers, runStages, securityStages } from './pipeline.js';
import { errorHandler, notFoundHandler } from './problem.js';
import { registerRoutes } from './routes/index.js';
import type { App } from './types.js';
import { validatorCompiler } from './validation.js';

const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/** Builds the HTTP server (not yet listening): options, parsers, the pipeline, routes, docs. */
export async function buildServer(services: Services): Promise<App> {
  const { config } = services;
  const options: FastifyServerOptions & { https?: unknown } = {
    loggerInstance: services.log,
    // Our onResponse hook writes one access line per request (route pattern, never the raw URL).
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => `req_${randomUUID().replace(/-/g, '')}`,
    requestIdHeader: false,
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustedProxies.length > 0 ? config.trustedProxies : false,
    // Against slow clients: whole-request deadline, idle keep-alive, idle socket.
    requestTimeout: config.timeouts.requestMs,
    keepAliveTimeout: config.timeouts.keepAliveMs,
    connectionTimeout: config.timeouts.connectionMs,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  };
  if (config.tls) {
    options.https = {
      key: readFileSync(config.tls.keyFile),
      cert: readFileSync(config.tls.certFile),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
    };
  }
  const app = Fastify(options as FastifyServerOptions) as unknown as App;
  app.server.headersTimeout = config.timeouts.headersMs;

  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

  app.decorateRequest('principal', null as never);
  app.decorateRequest('rawBody', undefined);
  app.decorateRequest('clientIp', '');

  // JSON only, and keep the exact bytes: signatures are computed over the raw body.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    request.rawBody = body as Buffer;
    parseJson(request, (body as Buffer).toString('utf8'), done);
  });

  // Every /api route must say which permission it needs, or the server refuses to start.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/api/') && route.config?.permission === undefined) {
      throw new Error(`route ${route.method} ${route.url} declares no permission`);
    }
  });

  const behindTls = config.tls !== undefined;
  app.addHook('onRequest', async (request, reply) => {
    request.principal = ANONYMOUS;
    request.clientIp = normalizeIp(request.ip);
    reply.header('X-Request-Id', request.id);
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('X-Frame-Options', 'DENY');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('Cache-Control', 'no-store');
    reply.header('Content-Security-Policy', API_CSP);
    if (behindTls || (config.trustedProxies.length > 0 && request.protocol === 'https')) {
      reply.header('Strict-Transport-Security', 'max-age=63072000; includeSubDomains');
    }
  });
  app.addHook('onRequest', runStages(arrivalStages(services)));
  app.addHook('preValidation', runStages(securityStages(services)));
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('X-API-Server-Time', String(services.clock.now()));
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    const seconds = reply.elapsedTime / 1000;
    services.metrics.httpRequests.inc(labels);
    services.metrics.httpDuration.observe(labels, seconds);
    request.log.info({ method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 }, 'request');
  });
  // The audit trail's access event (anonymized, buffered, written in batches): see audit/access.ts.
  app.addHook('onResponse', accessAuditHook(services.audit, services.clock));

  for (const observe of responseObservers(services)) app.addHook('onResponse', observe);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Moondraft API',
        version: '1',
        description: 'Self-hostable trading API. Errors are application/problem+json with a stable `code`; see API.md.',
      },
      servers: [{ url: config.publicUrl }],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        },
      },
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    transformStaticCSP: (header) => header,
    uiConfig: { docExpansion: 'list', deepLinking: true },
  });
  // swagger-ui's own pages need scripts and styles: relax the API's CSP for /docs only.
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.url === '/docs' || request.url.startsWith('/docs/')) {
      reply.header('Content-Security-Policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'");
      reply.header('Cache-Control', 'no-cache');
    }
    return payload;
  });

  await registerRoutes(app, services);
  return app;
}


