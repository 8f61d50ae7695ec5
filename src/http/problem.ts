import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, ERRORS, type ErrorCode } from '../errors/registry.js';
import { StateUnavailableError } from '../state/port.js';
import { storeUnavailable } from '../store/db.js';

export const PROBLEM_TYPE_BASE = 'https://moondraft.dev/problems/';

/** The RFC 9457 body of a refusal: `{ type, title, status, detail, code, requestId, ...extra }`. */
export function problemBody(code: ErrorCode, detail: string, requestId: string, extra?: Record<string, unknown>) {
  const { status, title } = ERRORS[code];
  return { type: `${PROBLEM_TYPE_BASE}${code}`, title, status, detail, code, requestId, ...(extra ?? {}) };
}

export function sendProblem(reply: FastifyReply, error: ApiError): FastifyReply {
  if (error.headers) reply.headers(error.headers);
  return reply
    .code(error.status)
    .type('application/problem+json')
    .send(problemBody(error.code, error.detail, reply.request.id, error.extra));
}

interface ValidationIssue {
  instancePath?: string;
  path?: string;
  message?: string;
}

/** Names where the input is wrong without echoing any of it back. */
function describeValidation(error: { validation?: ValidationIssue[]; validationContext?: string }): string {
  const where = error.validationContext ?? 'request';
  const issues = (error.validation ?? []).slice(0, 5).map((v) => {
    const at = (v.instancePath ?? v.path ?? '').replace(/^\//, '').replace(/\//g, '.') || '(root)';
    return `${at}: ${v.message ?? 'is not valid'}`;
  });
  return issues.length ? `Invalid ${where}: ${issues.join('; ')}` : `Invalid ${where}`;
}

/** Maps every error Fastify or our code can raise to a registered problem; nothing internal leaks. */
export function toApiError(error: unknown): { apiError: ApiError; unexpected: boolean } {
  if (error instanceof ApiError) return { apiError: error, unexpected: false };
  if (error instanceof StateUnavailableError) return { apiError: new ApiError('service_unavailable', 'A shared service is unavailable; try again shortly', { headers: { 'Retry-After': '1' } }), unexpected: false };
  // The database away or overloaded (see storeUnavailable): a clear 503 the client may retry, not
  // an internal error. A failure at COMMIT is not one of these: its outcome is unknown (500).
  if (storeUnavailable(error)) return { apiError: new ApiError('service_unavailable', 'The database is unavailable; try again shortly', { headers: { 'Retry-After': '1' } }), unexpected: false };
  const e = error as Omit<FastifyError, 'validation'> & { validation?: ValidationIssue[]; validationContext?: string };
  if (e && e.validation) return { apiError: new ApiError('validation_failed', describeValidation(e)), unexpected: false };
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { apiError: new ApiError('payload_too_large', 'The request body exceeds the size limit'), unexpected: false };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { apiError: new ApiError('unsupported_media_type', 'Send the body as application/json'), unexpected: false };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { apiError: new ApiError('validation_failed', 'The JSON body is empty'), unexpected: false };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { apiError: new ApiError('validation_failed', 'The body is not valid JSON'), unexpected: false };
    case 'FST_ERR_VALIDATION':
      return { apiError: new ApiError('validation_failed', 'The request is not valid'), unexpected: false };
  }
  // No bare SyntaxError is the request's: the JSON parser's arrive as FST_ERR_CTP_INVALID_JSON_BODY
  // (above). Any other (BigInt of a stored amount, JSON.parse of stored data) is the server's own
  // failure: a 500, logged, never a client's 400 that would count against its address.
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) return { apiError: new ApiError('payload_too_large'), unexpected: false };
  if (status === 415) return { apiError: new ApiError('unsupported_media_type'), unexpected: false };
  if (status === 404) return { apiError: new ApiError('not_found'), unexpected: false };
  if (status >= 400 && status < 500) return { apiError: new ApiError('validation_failed', 'The request is not valid'), unexpected: false };
  return { apiError: new ApiError('internal_error', 'An internal error occurred; quote the requestId when reporting it'), unexpected: true };
}

export function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  // The request's own body stream failed: its connection ended before the body arrived, at the
  // request deadline (clientErrorHandler answered 408 on the socket) or by the client. Its
  // ECONNRESET is no database's: recorded as a 503, it raised the 5xx count for a slow client.
  if (error !== undefined && request.raw.errored === error) {
    const timedOut = (request.raw.socket as { errored?: { code?: string } | null } | null)?.errored?.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    return sendProblem(reply, timedOut ? new ApiError('request_timeout', 'The request did not arrive in time') : new ApiError('validation_failed', 'The request body did not arrive whole'));
  }
  const { apiError, unexpected } = toApiError(error);
  if (unexpected) request.log.error({ err: error }, 'unexpected error');
  else if (apiError.status >= 500) request.log.warn({ err: error, code: apiError.code }, 'service error');
  return sendProblem(reply, apiError);
}

/**
 * The methods registered for each route pattern, so that a known path asked with another method
 * answers 405 `method_not_allowed` with `Allow` (RFC 9110 §15.5.6) rather than 404.
 */
export class RouteMethods {
  private readonly patterns = new Map<string, { match: RegExp; methods: Set<string> }>();

  add(url: string, method: string | string[]): void {
    let entry = this.patterns.get(url);
    if (!entry) {
      const source = url
        .split('/')
        .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/');
      entry = { match: new RegExp(`^${source}$`), methods: new Set() };
      this.patterns.set(url, entry);
    }
    for (const m of Array.isArray(method) ? method : [method]) entry.methods.add(m.toUpperCase());
  }

  /** The methods a path (without its query) is served with; empty when no route matches it. */
  allowed(path: string): string[] {
    const methods = new Set<string>();
    for (const { match, methods: ms } of this.patterns.values()) if (match.test(path)) for (const m of ms) methods.add(m);
    return [...methods];
  }
}

export function notFoundHandler(routes: RouteMethods) {
  return function notFound(request: FastifyRequest, reply: FastifyReply) {
    const path = request.url.split('?', 1)[0]!;
    const allowed = routes.allowed(path);
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      reply.header('Allow', allowed.join(', '));
      return sendProblem(reply, new ApiError('method_not_allowed', `${request.method} is not allowed here; use ${allowed.join(', ')}`));
    }
    return sendProblem(reply, new ApiError('not_found', 'No such route'));
  };
}
