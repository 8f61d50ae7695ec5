import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { KindGuard, Type, type TSchema } from '@sinclair/typebox';
import Fastify, { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { anonymizeIp, anonymizeTarget } from '../audit/anonymize.js';
import type { FloodRefusal } from '../audit/refusals.js';
import { readTlsFiles } from '../config/secrets.js';
import type { Services } from '../services.js';
import { normalizeIp } from './client-address.js';
import { arrivalStages, responseObservers, runObservers, runStages, securityStages } from './pipeline.js';
import { ApiError, ERRORS } from '../errors/registry.js';
import { ConnectionCounter } from '../security/ddos/connections.js';
import { IpAllowlist } from '../security/network/allowlist.js';
import { permissionRule, type Permission } from '../security/rbac/roles.js';
import { jsonRuleBroken } from './json-rules.js';
import { markTakenUp } from './observers/timing.js';
import { errorHandler, notFoundHandler, problemBody, RouteMethods, sendProblem } from './problem.js';
import { registerRoutes } from './routes/index.js';
import { drainingStage } from './stages/draining.js';
import { ipBlockStage } from './stages/ip-block.js';
import { HSTS, requestContextStage, SECURITY_HEADERS } from './stages/request-context.js';
import type { App } from './types.js';
import { validatorCompiler } from './validation.js';

/** A request id: `req_` and the 32 hex digits of a random UUID (122 random bits). */
export function newRequestId(): string {
  return `req_${randomUUID().replace(/-/g, '')}`;
}

/**
 * Whether a JSON body's Content-Type says nothing of its charset or says UTF-8 (`utf-8`, or the
 * common `utf8`, in any case, quoted or not). Any other charset parameter, or several, is false.
 */
export function utf8Labelled(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  for (const param of contentType.split(';').slice(1)) {
    const eq = param.indexOf('=');
    const name = (eq < 0 ? param : param.slice(0, eq)).trim().toLowerCase();
    if (name !== 'charset') continue;
    let value = eq < 0 ? '' : param.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    value = value.toLowerCase();
    if (value !== 'utf-8' && value !== 'utf8') return false;
  }
  return true;
}

/** Whether a body's Content-Encoding names no coding: absent, or only `identity` (any case). */
export function identityCoded(contentEncoding: string | undefined): boolean {
  if (contentEncoding === undefined) return true;
  return contentEncoding.split(',').every((coding) => {
    const c = coding.trim().toLowerCase();
    return c === '' || c === 'identity';
  });
}

/** Whether a request's Transfer-Encoding names no coding but chunked (absent, or `chunked` and `identity` only, any case). */
export function chunkedOnly(transferEncoding: string | undefined): boolean {
  if (transferEncoding === undefined) return true;
  return transferEncoding.split(',').every((coding) => ['', 'chunked', 'identity'].includes(coding.trim().toLowerCase()));
}

/** One count of open connections per server process (the services), whichever of its ports they reach. */
const connectionCounters = new WeakMap<Services, ConnectionCounter>();

/**
 * Closes a new connection at once when its address already holds MOONDRAFT_DDOS_CONNECTIONS_PER_IP
 * open ones to this process (security/ddos/connections.ts), on the API port or a side port (the
 * plain-HTTP redirect port faces the same clients, and every port spends the process's sockets).
 * Nothing is written: an answer would race the request bytes the client may already have sent,
 * which node:http would still parse and serve. Checked before node:http sets the connection up
 * (prepended). On the API port (`audited`) a refusal is counted in the audit trail's flood tally.
 */
export function capConnections(server: NetServer, services: Services, { audited }: { audited: boolean }): void {
  let counter = connectionCounters.get(services);
  if (!counter) {
    counter = new ConnectionCounter(services.config.ddos.connectionsPerIp, (address) => services.ddosGuard.isExempt(address));
    connectionCounters.set(services, counter);
  }
  const counted = counter;
  server.prependListener('connection', (socket: Socket) => {
    const { group, refused } = counted.opened(socket.remoteAddress);
    if (refused) {
      services.ddosMetrics.connectionsRefused.inc();
      // The group is an address, or an IPv6 /64 (`2001:db8:1:2::/64`): its network either way.
      if (audited) services.audit.tallyRefusal(group === null ? null : anonymizeTarget(group), 'too_many_connections');
      socket.destroy();
      return;
    }
    if (group !== null) socket.once('close', () => counted.closed(group));
  });
}

/**
 * Answers a request that Node's HTTP parser refused (malformed, headers past the size limit) or
 * that did not arrive before the request deadline. No Fastify request exists, so the answer is
 * written on the socket, as every other refusal is answered: problem+json with a request id, the
 * server time and the headers of every answer; then the connection is closed. The error is
 * logged at trace level, as Fastify does (the logger redacts the raw bytes it carries). On the API
 * port (`audited`) it is counted in the audit trail's flood tally (audit/refusals.ts), per client
 * network: no access event is written for what never became a request.
 */
export function clientErrorHandler(services: Services, { audited = true }: { audited?: boolean } = {}) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const refusal: FloodRefusal = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'malformed';
    const error =
      refusal === 'request_timeout'
        ? new ApiError('request_timeout', 'The request did not arrive in time')
        : refusal === 'headers_too_large'
          ? new ApiError('headers_too_large', 'The request headers exceed the size limit')
          : new ApiError('validation_failed', 'The request is not valid HTTP');
    services.log.trace({ err }, 'client error');
    // A response to an earlier request on this connection still under way (Node keeps it as the
    // socket's _httpMessage until it is finished): an answer written now would be read as that
    // request's (a 408 "did not arrive" for an order being placed), or cut into it. Closing the
    // connection leaves that outcome unknown instead, as any lost answer does. The in-flight
    // response may also be the refused request's own (its headers arrived, its body did not in
    // time or is malformed): nothing of it sent yet, the refusal is its answer.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean; req?: { complete?: boolean } } | null })._httpMessage;
    const answering = inFlight != null && (inFlight.headersSent !== false || inFlight.req?.complete !== false);
    if (socket.writable && !answering) {
      const requestId = newRequestId();
      const body = JSON.stringify(problemBody(error.code, error.detail, requestId));
      const headers = [
        `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}`,
        'Content-Type: application/problem+json; charset=utf-8',
        `Content-Length: ${Buffer.byteLength(body)}`,
        `X-Request-Id: ${requestId}`,
        `X-API-Server-Time: ${services.clock.now()}`,
        ...SECURITY_HEADERS.map(([name, value]) => `${name}: ${value}`),
        // Only over TLS: the side ports (redirect, metrics) share this handler and speak plain
        // HTTP, where HSTS must not be sent (RFC 6797 §7.2).
        ...((socket as Socket & { encrypted?: boolean }).encrypted === true ? [`${HSTS[0]}: ${HSTS[1]}`] : []),
        'Connection: close',
      ];
      socket.write(`${headers.join('\r\n')}\r\n\r\n${body}`);
    }
    // No request reached the response observers, so the failure counter (DDoS guard) did not see
    // this one: count it against the connection's address, or a flood of malformed HTTP would never
    // get its sender blocked. Behind a proxy, that address is the proxy's, which the guard exempts.
    // A request whose headers arrived (its body did not) is one: its observers count it.
    const address = socket.remoteAddress;
    const observed = inFlight != null && inFlight.req?.complete === false;
    socket.destroy(err);
    if (audited && !observed) services.audit.tallyRefusal(address ? anonymizeIp(normalizeIp(address)) : null, refusal);
    if (address && !observed) services.ddosGuard.clientError(normalizeIp(address)).catch((e: unknown) => services.log.error({ err: e }, 'ddos guard: malformed request not counted'));
  };
}

/**
 * Fastify's trust function for X-Forwarded-For: whether an address (the socket peer or a forwarded
 * hop) is one of the trusted proxies, in any spelling a client address may take (see normalizeIp).
 */
export function trustedProxy(entries: readonly string[]): (address: string) => boolean {
  const proxies = new IpAllowlist(entries);
  return (address) => proxies.allows(address);
}

/**
 * How often node:http looks for requests past their request or headers deadline. Its default, 30 s,
 * would let a client trickling its headers in hold the connection up to 30 s past the configured
 * deadlines (the idle-socket deadline never fires while bytes arrive). Every HTTP port uses it.
 */
export const DEADLINE_CHECK_MS = 500;

/** The CSP of the /docs pages (swagger-ui needs its own scripts, styles and inline styles). */
export const DOCS_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

/**
 * What the OpenAPI document says of every other answer of a route: a refusal, problem+json with a
 * registered code (errors are never serialized with this schema; it is documentation only).
 */
const PROBLEM_RESPONSE = {
  description: 'A refusal: an RFC 9457 problem with one of the registered codes (see API.md "Error codes"); the status is the code\'s',
  content: {
    'application/problem+json': {
      schema: {
        type: 'object',
        required: ['type', 'title', 'status', 'detail', 'code', 'requestId'],
        properties: {
          type: { type: 'string', format: 'uri' },
          title: { type: 'string' },
          status: { type: 'integer' },
          detail: { type: 'string' },
          code: { type: 'string', enum: Object.keys(ERRORS) },
          requestId: { type: 'string' },
        },
      },
    },
  },
};

/**
 * The credentials the OpenAPI document names for a route, from the permission matrix that the
 * authorize stage applies: a session only; or a session or an API key, which must also sign the
 * request (X-API-Timestamp and X-API-Signature) unless the permission allows unsigned keys.
 */
export function documentedSecurity(permission: Permission): Record<string, string[]>[] | undefined {
  if (permission === 'public') return undefined;
  const rule = permissionRule(permission);
  if (rule.scope === null) return [{ bearer: [] }];
  if (rule.unsignedKeyAllowed) return [{ bearer: [] }, { apiKey: [] }];
  return [{ bearer: [] }, { apiKey: [], apiTimestamp: [], apiSignature: [] }];
}

/**
 * The body of an /api route that writes (POST, PUT, PATCH, DELETE) and declares none: nothing, or
 * `{}`. A body such a route would otherwise ignore is refused (400), never dropped in silence: a
 * client that put a filter there (`DELETE /api/v1/trading/orders` with `{ "market": … }`) meant
 * something narrower than what the route would do without it (cancel every order in every market).
 */
export const NO_BODY = Type.Optional(Type.Object({}, { additionalProperties: false, description: 'No body (or {})' }));
const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The query of an /api route that declares none: no parameters (an unknown one is 400, as on routes that declare theirs). */
const NO_QUERY = Type.Object({}, { additionalProperties: false });

/** Set on the reply of a request once the response observers have seen it. */
const OBSERVED = Symbol('observed');
type Observable = FastifyReply & { [OBSERVED]?: boolean };
const noop = () => {};

/** Builds the HTTP server (not yet listening): options, parsers, the pipeline, routes, docs. */

export async function buildServer(services: Services): Promise<App> {
  const { config } = services;
  const requestContext = requestContextStage(services);
  const ipBlock = ipBlockStage(services);
  // Set once the server begins to close (preClose, below): requests then get the draining stage's 503.
  let closing = false;
  const draining = drainingStage(() => closing);
  const observe = runObservers(responseObservers(services));
  /** The response observers, once per request: at onResponse, or earlier for an abandoned request (below). */
  const observeOnce = (request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    const r = reply as Observable;
    if (r[OBSERVED] === true) return done();
    r[OBSERVED] = true;
    observe(request, reply, done);
  };
  const options: FastifyServerOptions & { https?: unknown; http?: unknown } = {
    loggerInstance: services.log,
    // Our onResponse hook writes one access line per request (route pattern, never the raw URL).
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: newRequestId,
    requestIdHeader: false,
    bodyLimit: config.bodyLimit,
    // A hop of X-Forwarded-For is judged as the client address is read (normalizeIp): a trusted
    // proxy's address with a port, in brackets or IPv4-mapped is still that proxy. Left to Fastify's
    // own matching, such a hop was not trusted, so the walk stopped at it and every client behind
    // it became that one proxy address (exempt from the per-address ceilings and blocks).
    trustProxy: config.trustedProxies.length > 0 ? trustedProxy(config.trustedProxies) : false,
    // Against slow clients: whole-request deadline, idle keep-alive, idle socket.
    requestTimeout: config.timeouts.requestMs,
    http: { connectionsCheckingInterval: DEADLINE_CHECK_MS },
    keepAliveTimeout: config.timeouts.keepAliveMs,
    connectionTimeout: config.timeouts.connectionMs,
    forceCloseConnections: 'idle',
    // Requests arriving while the server closes are refused by the draining stage (pipeline.ts),
    // as problem+json with the usual headers, instead of Fastify's bare 503 body.
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    // A path the router cannot even decode (bad percent-encoding, an over-long parameter) is
    // refused before any hook runs: answer it as every other refusal, with the usual headers, and
    // run the response observers (metrics, access log, audit, failure counter) that no hook will.
    clientErrorHandler: clientErrorHandler(services),
    frameworkErrors: (_error, request, reply) => {
      // Fastify starts no reply clock for such a request: without this mark its latency would be
      // recorded as 0 s (always the lowest bucket) however long the refusal took.
      markTakenUp(reply);
      requestContext.run(request, reply);
      reply.header('X-API-Server-Time', String(services.clock.now()));
      // No onRequest hook runs here: the arrival stages that decide a refusal still apply, in their
      // order (synchronous, no I/O): a draining server answers 503, a blocked address as blocked.
      let problem = new ApiError('validation_failed', 'The request path is not valid');
      try {
        draining.run(request, reply);
        ipBlock.run(request, reply);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        problem = err;
      }
      sendProblem(reply, problem);
      observe(request, reply, () => {});
    },
  };
  if (config.tls) {
    options.https = {
      ...readTlsFiles(config.tls, config.env),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      // The idle-socket deadline (connectionTimeout) only starts once the handshake is done: until
      // then Node's TLS server waits 120 s for it, so a client sending no ClientHello would hold
      // the socket that long whatever the configured deadlines.
      handshakeTimeout: config.timeouts.connectionMs,
      connectionsCheckingInterval: DEADLINE_CHECK_MS,
    };
  }
  const app = Fastify(options as FastifyServerOptions) as unknown as App;
  app.server.headersTimeout = config.timeouts.headersMs;
  // Every header line of a request, not Node's first thousand or so: past that count it drops the
  // rest without a word, so a second Authorization (which the authenticate stage refuses) could be
  // hidden behind filler lines and the request served as the first. The header size limit (16 KiB,
  // 431 past it) still bounds what a request may carry.
  app.server.maxHeadersCount = 0;
  capConnections(app.server, services, { audited: true });

  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(errorHandler);
  const routeMethods = new RouteMethods();
  app.setNotFoundHandler(notFoundHandler(routeMethods));

  app.decorateRequest('principal', null as never);
  app.decorateRequest('rawBody', undefined);
  app.decorateRequest('clientIp', '');

  // JSON only, and keep the exact bytes: signatures are computed over the raw body. JSON is UTF-8
  // (RFC 8259 §8.1): bytes that are not UTF-8 are refused, not replaced with U+FFFD, so the request
  // acted on is exactly the one whose bytes were signed; a body labelled with another charset is
  // refused too (415), since a proxy or log that honours the label would read other text from those
  // bytes; and it must be I-JSON without NUL (json-rules.ts), so no other reader of those bytes sees
  // another request.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    request.rawBody = body as Buffer;
    // No content at all is no body, whatever Content-Type says (clients that send the header on
    // every call): the request is served as one without a body (signed over the empty body), and a
    // route that needs one refuses its absence in validation. Not an empty JSON text to refuse.
    if ((body as Buffer).length === 0) {
      done(null, undefined);
      return;
    }
    // node:http undoes the chunked transfer coding only: under any other (`gzip, chunked`) the
    // bytes handed on are still coded, and a proxy honouring the header reads another body.
    if (!chunkedOnly(request.headers['transfer-encoding'])) {
      done(new ApiError('validation_failed', 'The request uses a transfer coding other than chunked'), undefined);
      return;
    }
    // No content coding is decoded here: compressed JSON would be refused as bytes that are not
    // UTF-8, and plain JSON labelled gzip served as it stands, though a proxy or firewall honouring
    // the label reads (or fails to read) another body from the signed bytes (RFC 9110 §8.4.1: 415).
    if (!identityCoded(request.headers['content-encoding'])) {
      done(new ApiError('unsupported_media_type', 'Send the body without a content coding (no Content-Encoding, or identity)', { headers: { 'Accept-Encoding': 'identity' } }), undefined);
      return;
    }
    if (!utf8Labelled(request.headers['content-type'])) {
      done(new ApiError('unsupported_media_type', 'JSON bodies are UTF-8: send charset=utf-8, or no charset'), undefined);
      return;
    }
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(new ApiError('validation_failed', 'The body is not valid UTF-8'), undefined);
      return;
    }
    parseJson(request, text, (err, value) => {
      if (err) return done(err, undefined);
      // Valid JSON, and I-JSON with no NUL (json-rules.ts): what was signed is read one way only.
      const broken = jsonRuleBroken(text);
      if (broken) return done(new ApiError('validation_failed', broken), undefined);
      done(null, value);
    });
  });

  // Operations (`post /api/v1/keys/{id}/regenerate`) whose body schema is Type.Optional: the
  // validator takes them without a body, and the document must not call the body required
  // (@fastify/swagger marks every body required).
  const optionalBodies = new Set<string>();
  // Every /api route must say which permission it needs, or the server refuses to start.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/api/') && route.config?.permission === undefined) {
      throw new Error(`route ${route.method} ${route.url} declares no permission`);
    }
    // The document says which credentials (and signature headers) the route takes as the matrix
    // decides them, whatever the route module wrote.
    const security = route.config?.permission === undefined ? undefined : documentedSecurity(route.config.permission);
    if (security) route.schema = { ...(route.schema ?? {}), security };
    if (route.url.startsWith('/api/') && route.schema?.body === undefined && [route.method].flat().some((m) => WRITE_METHODS.has(m.toUpperCase()))) {
      route.schema = { ...(route.schema ?? {}), body: NO_BODY };
    }
    // A route that declares no query parameters takes none: `GET /api/v1/trading/positions?asset=MOON`
    // would otherwise answer every position as if filtered, where routes that declare theirs refuse
    // an unknown one (400 validation_failed).
    if (route.url.startsWith('/api/') && route.schema?.querystring === undefined) {
      route.schema = { ...(route.schema ?? {}), querystring: NO_QUERY };
    }
    routeMethods.add(route.url, route.method);
    if (route.schema?.body && KindGuard.IsOptional(route.schema.body as TSchema)) {
      for (const method of [route.method].flat()) optionalBodies.add(`${method.toLowerCase()} ${route.url.replace(/:(\w+)/g, '{$1}')}`);
    }
  });

  // The pipeline (pipeline.ts): four hooks, each running its ordered list.
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', runStages(arrivalStages(services, () => closing)));
  // A client that goes away before its answer is written leaves a response that never finishes, and
  // Fastify runs no onResponse hook for it: the request (an order placed, a withdrawal asked) would
  // leave no access event in the audit trail, no log line, no metric. Such a request is observed
  // when its answer is made (onSend, below: the status is final), or when the connection closes if
  // the answer was already made; once.
  app.addHook('onRequest', (request, reply, done) => {
    reply.raw.once('close', () => {
      if (reply.raw.writableEnded) observeOnce(request, reply, noop);
    });
    done();
  });
  app.addHook('preValidation', runStages(securityStages(services)));
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('X-API-Server-Time', String(services.clock.now()));
    if (reply.raw.destroyed) observeOnce(request, reply, noop);
    done(null, payload);
  });
  app.addHook('onResponse', observeOnce);

  await app.register(swagger, {
    // Every route may also refuse (401, 403, 404, 429, 503…): its document says so and what the
    // body of a refusal is, without touching the schemas the responses are serialized with.
    transform: ({ schema, url }) => ({
      url,
      schema: { ...schema, response: { ...((schema?.response as object | undefined) ?? { 200: { description: 'Default Response' } }), default: PROBLEM_RESPONSE } } as typeof schema,
    }),
    transformObject: (documents) => {
      const doc = (documents as { openapiObject: { paths?: Record<string, Record<string, { requestBody?: { required?: boolean } }>> } }).openapiObject;
      for (const [path, operations] of Object.entries(doc.paths ?? {})) {
        for (const [method, operation] of Object.entries(operations)) {
          if (operation.requestBody && optionalBodies.has(`${method} ${path}`)) operation.requestBody.required = false;
        }
      }
      return doc as never;
    },
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
          apiTimestamp: {
            type: 'apiKey',
            in: 'header',
            name: 'X-API-Timestamp',
            description: 'Epoch ms when the request was signed: at most the receive window behind server time (X-API-Recv-Window, ms, ≤ 60000, default 5000) and at most 1 s ahead',
          },
          apiSignature: {
            type: 'apiKey',
            in: 'header',
            name: 'X-API-Signature',
            description: 'Lowercase hex HMAC-SHA256 keyed with the apiSecret (hmac keys), or the ed25519 signature (ed25519 keys), of timestamp + METHOD + path with query + raw body',
          },
        },
      },
    },
  });
  // swagger-ui's own pages need scripts and styles: the API's CSP is relaxed for /docs only (this
  // scope, so API requests never get it). swagger-ui sets the header in an onSend hook of its own
  // that runs after any hook of ours, so the policy is handed to it (`staticCSP`): with `true` it
  // would send its default instead (framing by the same origin, styles and fonts from any https
  // origin, validator.swagger.io images).
  await app.register(async (docs) => {
    docs.addHook('onSend', (_request, reply, payload, done) => {
      reply.header('Cache-Control', 'no-cache');
      done(null, payload);
    });
    await docs.register(swaggerUi, {
      routePrefix: '/docs',
      staticCSP: DOCS_CSP,
      uiConfig: { docExpansion: 'list', deepLinking: true },
    });
  });

  await registerRoutes(app, services);
  return app;
}


