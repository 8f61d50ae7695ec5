import { createServer, type RequestListener, type Server } from 'node:http';
import type { Moondraft } from '../app.js';
import { ERRORS } from '../errors/registry.js';
import { problemBody } from './problem.js';
import { capConnections, clientErrorHandler, DEADLINE_CHECK_MS, newRequestId } from './server.js';
import { SECURITY_HEADERS } from './stages/request-context.js';
import { carriesCredentials } from './stages/plaintext-credentials.js';

export interface Listening {
  url: string;
  stop(): Promise<void>;
}

/**
 * How long a stop waits for in-flight requests before it ends their connections. Less than the 15 s
 * after which `serve` exits regardless: a client trickling a request in, or a handler that hangs,
 * would otherwise hold the drain until then, and the forced exit would skip closing the services,
 * losing the audit events still buffered.
 */
export const DRAIN_GRACE_MS = 10_000;

/**
 * Listens on the configured address; with TLS configured and MOONDRAFT_HTTP_REDIRECT_PORT set,
 * also serves a plain-HTTP port that only redirects to the public HTTPS URL (never to whatever
 * Host the client sent). Metrics go to their own port when MOONDRAFT_METRICS_PORT is set.
 */
export async function listen(moondraft: Moondraft): Promise<Listening> {
  const { app, services } = moondraft;
  // The side ports answer outside Fastify: they carry the headers of every response themselves,
  // the security headers included (nosniff, no framing, no-store, CSP), as every API answer does.
  // (No HSTS: these ports speak plain HTTP, where browsers ignore it.)
  const securityHeaders = Object.fromEntries(SECURITY_HEADERS);
  const conventionHeaders = () => ({ ...securityHeaders, 'X-Request-Id': newRequestId(), 'X-API-Server-Time': String(services.clock.now()) });
  const { config } = services;
  /**
   * A side port's server, held to the API port's deadlines (whole request, headers, keep-alive,
   * idle socket: Node's defaults would let a slow client hold a connection for minutes or for
   * good) and to the same per-address count of open connections, and answering requests Node's
   * parser refuses with the same problem+json.
   */
  const sideServer = (handler: RequestListener): Server => {
    const { requestMs, headersMs, keepAliveMs, connectionMs } = config.timeouts;
    const server = createServer({ requestTimeout: requestMs, headersTimeout: headersMs, keepAliveTimeout: keepAliveMs, connectionsCheckingInterval: DEADLINE_CHECK_MS }, handler);
    server.setTimeout(connectionMs, (socket) => socket.destroy());
    server.on('clientError', clientErrorHandler(services, { audited: false }));
    capConnections(server, services, { audited: false });
    return server;
  };
  const url = await app.listen({ host: config.host, port: config.port });
  const extra: Server[] = [];
  if (config.tls && config.httpRedirectPort !== undefined) {
    const target = config.publicUrl.startsWith('https://') ? config.publicUrl : `https://${new URL(config.publicUrl).hostname}:${config.port}`;
    const redirect = sideServer((req, res) => {
      // A request carrying credentials already sent them in clear text: redirecting it would let a
      // client configured with the http:// URL go on doing so at every request. Refuse it, so that
      // the client fails at once and its owner fixes the URL (and replaces what was exposed).
      // Cookies are not among them: the API reads none, and a browser sends the cookies its site's
      // other pages set without Secure (analytics, consent) to any port; refusing those would
      // strand browsers on plain HTTP instead of sending them to HTTPS.
      // A sign-in or refresh carries them in its body (a refresh token) or gets them in its answer.
      if (carriesCredentials(req.headers, (req.url ?? '').split('?', 1)[0]!) || req.headers['x-api-signature'] !== undefined) {
        const headers = conventionHeaders();
        res.writeHead(ERRORS.https_required.status, { ...headers, 'Content-Type': 'application/problem+json; charset=utf-8', Connection: 'close' });
        res.end(JSON.stringify(problemBody('https_required', `Use ${target}: this port only redirects, and never accepts credentials`, headers['X-Request-Id'])));
        return;
      }
      const path = (req.url ?? '/').startsWith('/') ? req.url ?? '/' : '/';
      res.writeHead(308, { ...conventionHeaders(), Location: `${target}${path}` });
      res.end();
    });
    await bind(redirect, config.httpRedirectPort, config.host, extra);
    extra.push(redirect);
  }
  if (config.metricsPort !== undefined) {
    const metrics = sideServer((req, res) => {
      const headers = conventionHeaders();
      const problem = (code: 'not_found' | 'method_not_allowed' | 'internal_error', detail: string, extraHeaders: Record<string, string> = {}) => {
        res.writeHead(ERRORS[code].status, { ...headers, ...extraHeaders, 'Content-Type': 'application/problem+json; charset=utf-8' });
        res.end(JSON.stringify(problemBody(code, detail, headers['X-Request-Id'])));
      };
      // The path alone: a scrape may add URL parameters (Prometheus `params`), which change nothing.
      if ((req.url ?? '').split('?', 1)[0] !== '/metrics') {
        problem('not_found', 'This port serves GET /metrics only');
        return;
      }
      // A known path asked with another method: 405 with Allow, as on the API port (API.md).
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        problem('method_not_allowed', `${req.method} is not allowed here; use GET, HEAD`, { Allow: 'GET, HEAD' });
        return;
      }
      services.metrics.scrape(services.clock.now()).then(
        (text) => res.writeHead(200, { ...headers, 'Content-Type': services.metrics.registry.contentType }).end(text),
        () => problem('internal_error', 'An internal error occurred; quote the requestId when reporting it'),
      );
    });
    await bind(metrics, config.metricsPort, config.metricsHost, extra);
    extra.push(metrics);
  } else if (config.env === 'live') {
    services.log.warn('metrics are not served: live serves GET /metrics only on MOONDRAFT_METRICS_PORT (set it, and MOONDRAFT_METRICS_HOST to a private address)');
  }
  return {
    url,
    async stop() {
      // Requests still in flight after the grace lose their connection (and are audited as such);
      // then the services close as usual, writing what the audit trail holds. Every port stops
      // accepting at once, under the same grace: a side port's slow client, awaited first, kept
      // the API port accepting until its deadline, and the API's grace only began after that.
      const grace = setTimeout(() => {
        services.log.warn({ graceMs: DRAIN_GRACE_MS }, 'shutting down: ending the connections of requests still in flight');
        app.server.closeAllConnections();
        for (const s of extra) s.closeAllConnections();
      }, DRAIN_GRACE_MS);
      grace.unref();
      try {
        await Promise.all([...extra.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))), moondraft.close()]);
      } finally {
        clearTimeout(grace);
      }
    },
  };
}

/**
 * Listens on a side port, or rejects with the reason (the port taken, say) after closing the side
 * ports already open: the caller stops the API port (serve closes the server on a failed listen).
 * Without an error listener a bind failure would be an uncaught exception, and the start would hang.
 */
async function bind(server: Server, port: number, host: string, opened: Server[]): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await Promise.all(opened.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    throw err;
  }
}
