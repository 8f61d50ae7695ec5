/**
 * The problem codes the server answers with (API.md "Error codes", plus the ones its registry added).
 * The server may add codes over time, so `MoondraftError.code` also admits other strings.
 */
export const SERVER_ERROR_CODES = [
  'validation_failed',
  'unauthenticated',
  'invalid_token',
  'token_expired',
  'token_revoked',
  'refresh_token_reused',
  'invalid_credentials',
  'step_up_required',
  'invalid_api_key',
  'key_revoked',
  'key_expired',
  'key_suspended',
  'wrong_environment',
  'invalid_signature',
  'signature_required',
  'timestamp_out_of_window',
  'replayed_request',
  'ip_not_allowed',
  'country_not_allowed',
  'ip_blocked',
  'insufficient_scope',
  'forbidden_role',
  'session_required',
  'rate_limited',
  'temporarily_suspended',
  'not_found',
  'method_not_allowed',
  'conflict',
  'insufficient_funds',
  'daily_limit_exceeded',
  'open_orders_limit_exceeded',
  'withdrawal_limit_exceeded',
  'trading_halted',
  'account_isolated',
  'payload_too_large',
  'headers_too_large',
  'request_timeout',
  'unsupported_media_type',
  'service_unavailable',
  'internal_error',
  'faucet_limit_exceeded',
  'token_creation_limit_exceeded',
  'key_limit_exceeded',
  'not_token_creator',
  'address_not_allowed',
  'four_eyes_required',
  'https_required',
] as const;
export type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number];

/**
 * Codes the client raises itself, when there is no problem body to read:
 * - `network_error`: the request failed before a complete response arrived (connection refused or reset, DNS…);
 * - `timeout`: no complete response within `timeoutMs`;
 *   for both, when the status and headers had arrived before the body was lost, `status` and
 *   `requestId` are the ones received (else 0 and undefined);
 * - `tls_error`: the server's certificate was refused by normal TLS verification;
 * - `certificate_pin_mismatch`: the certificate chain matched none of the configured SPKI pins;
 * - `unexpected_response`: an answer that is not the API's JSON (a proxy's HTML page, a redirect, an empty or
 *   cut-short 2xx where an object was expected…);
 * - `aborted`: the caller's AbortSignal fired;
 * - `session_unavailable`: a session-only call with no session, a session whose refresh token is gone, or one
 *   whose access token cannot go in a header (never shown);
 * - `challenge_mismatch`: a sign-in message names another address, nonce or domain than expected, or a URI off its domain (not signed).
 */
export const CLIENT_ERROR_CODES = [
  'network_error',
  'timeout',
  'tls_error',
  'certificate_pin_mismatch',
  'unexpected_response',
  'aborted',
  'session_unavailable',
  'challenge_mismatch',
] as const;
export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

// `string & {}` keeps editor completion for the known codes while admitting codes added later.
export type MoondraftErrorCode = ServerErrorCode | ClientErrorCode | (string & {});

/** What was signed: the server names its view in `invalid_signature` problems; the client keeps its own. */
export interface SignedParts {
  timestamp: string;
  method: string;
  path: string;
  bodyLength: number;
  bodySha256: string;
}

export interface MoondraftErrorInit {
  code: MoondraftErrorCode;
  status: number;
  detail: string;
  method: string;
  path: string;
  requestId?: string | undefined;
  title?: string | undefined;
  type?: string | undefined;
  problem?: Record<string, unknown> | undefined;
  retryAfterMs?: number | undefined;
  signed?: SignedParts | undefined;
  sent?: SignedParts | undefined;
  attempts?: number;
  clientOrderId?: string | undefined;
  clientWithdrawalId?: string | undefined;
  cause?: unknown;
}

/**
 * Every failure of a client call. `code` is the server's problem code (or a client code when no
 * problem arrived), `status` the HTTP status (0 when no response status arrived).
 *
 * @example
 * try { await client.trading.placeOrder(order) }
 * catch (e) { if (e instanceof MoondraftError && e.code === 'insufficient_funds') … }
 */
export class MoondraftError extends Error {
  override readonly name = 'MoondraftError';
  readonly code: MoondraftErrorCode;
  readonly status: number;
  readonly detail: string;
  /** The server's `X-Request-Id` / problem `requestId`: quote it when reporting a problem. */
  readonly requestId: string | undefined;
  readonly title: string | undefined;
  readonly type: string | undefined;
  readonly method: string;
  /** The path with query, as sent. */
  readonly path: string;
  /** The whole problem body, for members this class does not name. */
  readonly problem: Record<string, unknown> | undefined;
  /** From `Retry-After`, when the server sent one. */
  readonly retryAfterMs: number | undefined;
  /** `invalid_signature` only: what the server says it signed. */
  readonly signed: SignedParts | undefined;
  /** Signed requests only: what this client signed, to compare with `signed`. */
  readonly sent: SignedParts | undefined;
  /** How many times the request was sent before giving up. */
  readonly attempts: number;
  /**
   * Order placement and position close: the `clientOrderId` the request carried (yours, or the one
   * the client generated). The outcome of a failed call may be unknown (a 500, a timeout, a lost
   * connection): place again with this id to get the original order if it was taken, never a second.
   */
  readonly clientOrderId: string | undefined;
  /** Withdrawal requests: the `clientWithdrawalId` the request carried (yours or generated); as `clientOrderId`. */
  readonly clientWithdrawalId: string | undefined;

  constructor(init: MoondraftErrorInit) {
    super(describe(init), init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.status = init.status;
    this.detail = init.detail;
    this.requestId = init.requestId;
    this.title = init.title;
    this.type = init.type;
    this.method = init.method;
    this.path = init.path;
    this.problem = init.problem;
    this.retryAfterMs = init.retryAfterMs;
    this.signed = init.signed;
    this.sent = init.sent;
    this.attempts = init.attempts ?? 1;
    this.clientOrderId = init.clientOrderId;
    this.clientWithdrawalId = init.clientWithdrawalId;
  }
}

/**
 * A copy of `error` that names the idempotency id of the call it ended (a copy, not the error
 * itself: one error may reach several calls, e.g. those awaiting one failed session refresh).
 */
export function withClientIds(error: MoondraftError, ids: { clientOrderId?: string | undefined; clientWithdrawalId?: string | undefined }): MoondraftError {
  const copy = new MoondraftError({
    code: error.code,
    status: error.status,
    detail: error.detail,
    method: error.method,
    path: error.path,
    requestId: error.requestId,
    title: error.title,
    type: error.type,
    problem: error.problem,
    retryAfterMs: error.retryAfterMs,
    signed: error.signed,
    sent: error.sent,
    attempts: error.attempts,
    cause: error.cause,
    clientOrderId: ids.clientOrderId ?? error.clientOrderId,
    clientWithdrawalId: ids.clientWithdrawalId ?? error.clientWithdrawalId,
  });
  if (error.stack !== undefined) copy.stack = error.stack;
  return copy;
}

/** True when `error` is a MoondraftError (with this code, if given). */
export function isMoondraftError(error: unknown, code?: MoondraftErrorCode): error is MoondraftError {
  return error instanceof MoondraftError && (code === undefined || error.code === code);
}

function describe(init: MoondraftErrorInit): string {
  const head = `${init.method} ${init.path} → ${init.status || 'no response'} ${init.code}: ${init.detail}`;
  const where = init.signed && init.sent ? signatureDifference(init.signed, init.sent) : '';
  const id = init.requestId ? ` (requestId ${init.requestId})` : '';
  return `${head}${where}${id}`;
}

/** Names the parts where the server's canonical string differs from ours: the usual culprit is the path. */
export function signatureDifference(server: SignedParts, client: SignedParts): string {
  const diffs: string[] = [];
  for (const key of ['timestamp', 'method', 'path', 'bodyLength', 'bodySha256'] as const) {
    if (String(server[key]) !== String(client[key])) diffs.push(`${key}: server ${JSON.stringify(server[key])}, client ${JSON.stringify(client[key])}`);
  }
  return diffs.length
    ? ` [signed parts differ: ${diffs.join('; ')}]`
    : ' [the signed parts match: the key or secret is wrong]';
}
