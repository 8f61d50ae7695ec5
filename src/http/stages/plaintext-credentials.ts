import type { IncomingHttpHeaders } from 'node:http';
import { ApiError } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import type { Stage } from './types.js';

/**
 * Routes whose body spends or whose answer hands out credentials: a refresh token (the longest-lived
 * credential, in the body, not a header) and the sign-in that answers with a token pair.
 */
const CREDENTIAL_ROUTES: ReadonlySet<string> = new Set(['/api/v1/auth/login', '/api/v1/auth/refresh']);

/**
 * Whether a request to `path` (without its query) carries credentials: a token or API key in its
 * headers, or a sign-in or refresh (CREDENTIAL_ROUTES). Such a request sent in the clear is refused,
 * here and on the TLS server's plain-HTTP redirect port (listen.ts).
 */
export function carriesCredentials(headers: IncomingHttpHeaders, path: string): boolean {
  return headers.authorization !== undefined || headers['x-api-key'] !== undefined || CREDENTIAL_ROUTES.has(path);
}

/**
 * Credentials only over HTTPS, behind a proxy too. A live server without TLS of its own serves
 * through a trusted TLS-terminating proxy (config refuses live with neither). A request carrying
 * credentials (`Authorization`, `X-API-Key`; a sign-in or refresh, see CREDENTIAL_ROUTES) is refused with 403 `https_required` unless that proxy
 * says the client's hop was HTTPS (`X-Forwarded-Proto: https`): a token or key that crossed a hop in
 * the clear, or reached this plain-HTTP port around the proxy, is not accepted, as the server's own
 * redirect port refuses it when it does TLS itself (listen.ts). The client learns at once, instead
 * of a working integration that sends its credentials in the clear. Undefined (no stage) unless the
 * server is live behind a proxy without TLS of its own.
 */
export function plaintextCredentialsStage(services: Services): Stage | undefined {
  const { config } = services;
  if (config.env !== 'live' || config.tls !== undefined || config.trustedProxies.length === 0) return undefined;
  return {
    name: 'plaintextCredentials',
    run(request) {
      if (!carriesCredentials(request.headers, request.routeOptions.url ?? '')) return;
      if (request.protocol === 'https') return;
      throw new ApiError('https_required', 'Credentials are only accepted over HTTPS: the TLS-terminating proxy in front of this server did not report the request as HTTPS (X-Forwarded-Proto: https)');
    },
  };
}
