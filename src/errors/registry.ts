/**
 * The one registry of refusals. Every error body the server sends is built from an entry here
 * (see http/problem.ts); routes and stages never build error bodies by hand.
 *
 * Codes are part of the public contract (API.md "Error codes"): add codes, never reuse one for
 * another meaning.
 */
export const ERRORS = {
  validation_failed: { status: 400, title: 'The request is not valid' },
  unauthenticated: { status: 401, title: 'Authentication is required' },
  invalid_token: { status: 401, title: 'The access token is not valid' },
  token_expired: { status: 401, title: 'The access token has expired' },
  token_revoked: { status: 401, title: 'The session behind this token was revoked' },
  refresh_token_reused: { status: 401, title: 'A spent refresh token was presented; the session is revoked' },
  invalid_credentials: { status: 401, title: 'The sign-in proof was not accepted' },
  step_up_required: { status: 401, title: 'This operation needs a recent sign-in' },
  invalid_api_key: { status: 401, title: 'The API key is not valid' },
  key_revoked: { status: 401, title: 'The API key was revoked' },
  key_expired: { status: 401, title: 'The API key has expired' },
  key_suspended: { status: 403, title: 'The API key is suspended' },
  wrong_environment: { status: 401, title: 'The API key belongs to another environment' },
  invalid_signature: { status: 401, title: 'The request signature does not match' },
  signature_required: { status: 401, title: 'This request must be signed' },
  timestamp_out_of_window: { status: 401, title: 'The request timestamp is outside the receive window' },
  replayed_request: { status: 401, title: 'This signed request was already accepted' },
  ip_not_allowed: { status: 403, title: 'The client address is not on the key’s allowlist' },
  country_not_allowed: { status: 403, title: 'Access from this country is not allowed for the key' },
  ip_blocked: { status: 403, title: 'The client address is blocked' },
  insufficient_scope: { status: 403, title: 'The API key lacks the scope this operation needs' },
  forbidden_role: { status: 403, title: 'The account’s role does not allow this operation' },
  session_required: { status: 403, title: 'This operation needs a signed-in session, not an API key' },
  rate_limited: { status: 429, title: 'Too many requests' },
  temporarily_suspended: { status: 429, title: 'Requests are suspended for a while after abuse' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  conflict: { status: 409, title: 'The request conflicts with the current state' },
  insufficient_funds: { status: 422, title: 'The available balance is not enough' },
  daily_limit_exceeded: { status: 403, title: 'The daily trading limit would be exceeded' },
  open_orders_limit_exceeded: { status: 422, title: 'The account has the most open orders allowed in this market' },
  withdrawal_limit_exceeded: { status: 403, title: 'The withdrawal limit would be exceeded' },
  trading_halted: { status: 503, title: 'Trading is halted' },
  account_isolated: { status: 403, title: 'The account is isolated' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  request_timeout: { status: 408, title: 'The request did not arrive in time' },
  unsupported_media_type: { status: 415, title: 'The request body must be application/json' },
  service_unavailable: { status: 503, title: 'A service the request needs is unavailable' },
  internal_error: { status: 500, title: 'Internal error' },
  faucet_limit_exceeded: { status: 403, title: 'The sandbox faucet limit would be exceeded' },
  token_creation_limit_exceeded: { status: 403, title: 'The daily token creation limit would be exceeded' },
  key_limit_exceeded: { status: 403, title: 'The account holds the most API keys allowed' },
  not_token_creator: { status: 403, title: 'Only the token’s creator may change it' },
  address_not_allowed: { status: 403, title: 'The address book does not allow this address yet' },
  four_eyes_required: { status: 403, title: 'Another admin must decide on this' },
  https_required: { status: 403, title: 'Credentials are only accepted over HTTPS' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** A refusal the HTTP layer turns into problem+json. `extra` adds documented members to the body. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string;
  readonly extra: Record<string, unknown> | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    code: ErrorCode,
    detail?: string,
    options: { extra?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(detail ?? ERRORS[code].title);
    this.name = 'ApiError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.detail = detail ?? ERRORS[code].title;
    this.extra = options.extra;
    this.headers = options.headers;
  }
}

/**
 * What domain code returns instead of throwing: a value, or a refusal with a registered code.
 * Only the route layer turns a refusal into an HTTP error (see `unwrap`).
 */
export type Result<T, C extends ErrorCode = ErrorCode> =
  | { ok: true; value: T }
  | { ok: false; code: C; detail: string; extra?: Record<string, unknown> };

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const fail = <C extends ErrorCode>(
  code: C,
  detail: string,
  extra?: Record<string, unknown>,
): { ok: false; code: C; detail: string; extra?: Record<string, unknown> } =>
  extra ? { ok: false, code, detail, extra } : { ok: false, code, detail };

/** Route-layer helper: the value, or an ApiError carrying the refusal. */
export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  // A refusal that says when to try again (`extra.retryAfter`, whole seconds) says it in the header too.
  // Safe integers only: String() of a larger one can be exponent notation ('1e+21'), not delay-seconds.
  const retryAfter = result.extra?.retryAfter;
  const headers = typeof retryAfter === 'number' && Number.isSafeInteger(retryAfter) && retryAfter > 0 ? { 'Retry-After': String(retryAfter) } : undefined;
  throw new ApiError(result.code, result.detail, { ...(result.extra ? { extra: result.extra } : {}), ...(headers ? { headers } : {}) });
}
