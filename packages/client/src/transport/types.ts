/** One HTTP exchange as the request layer sees it: the transport sends exactly these bytes. */
export interface TransportRequest {
  method: string;
  /** Already normalised: `url.pathname + url.search` is the signed request target. */
  url: URL;
  headers: Record<string, string>;
  /** Exact body bytes, or undefined for a bodiless request (no Content-Type is sent then). */
  body: Uint8Array | undefined;
  signal: AbortSignal;
  /**
   * The most body bytes to read: a longer body (a proxy's endless page, a misrouted download) is
   * not read further, its connection is closed and the response comes back with `tooLarge` and an
   * empty body. Undefined: no limit (custom transports may ignore it).
   */
  maxResponseBytes?: number;
}

export interface TransportResponse {
  status: number;
  /** Case-insensitive lookup; `content-type` must be passed through (only `application/problem+json` is read as the server's problem). */
  headers: { get(name: string): string | null };
  /** The whole body, decoded as UTF-8 (empty when `tooLarge`). */
  body: string;
  /** The body was longer than `maxResponseBytes` and was not read. */
  tooLarge?: boolean;
}

export type TransportFailureKind = 'network' | 'timeout' | 'aborted' | 'tls' | 'pin';

/** What had arrived of a response before its body was lost: its status line and headers. */
export interface ReceivedHead {
  status: number;
  headers: { get(name: string): string | null };
}

/**
 * Thrown by a transport when the response's status and headers arrived but its body did not (the
 * connection reset, a timeout or an abort mid-body): `classifyFailure` classifies `cause` as usual and
 * keeps `head` on the TransportError, so the error can name the status and request id received.
 */
export class ResponseInterrupted extends Error {
  override readonly name = 'ResponseInterrupted';
  constructor(
    readonly head: ReceivedHead,
    cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

/** A request that got no response; `kind` decides whether the request layer may retry. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  /**
   * True when the request certainly never reached the server: no connection was made (refused,
   * no such host) or the TLS handshake failed, before a byte of the request was written.
   */
  readonly neverSent: boolean;
  /** The response's status and headers when they arrived before the failure (its body did not). */
  readonly received: ReceivedHead | undefined;
  constructor(
    readonly kind: TransportFailureKind,
    message: string,
    options?: { cause?: unknown; neverSent?: boolean; received?: ReceivedHead },
  ) {
    super(message, options);
    this.neverSent = options?.neverSent ?? kind === 'pin';
    this.received = options?.received;
  }
}

/** Failures to connect at all: the request was never written. */
const NOT_CONNECTED_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME']);

export interface Transport {
  send(request: TransportRequest): Promise<TransportResponse>;
  /** Releases pooled connections. */
  close(): void;
}

const TLS_ERROR_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Maps a low-level failure (node:http error, fetch TypeError with a cause) to a TransportError. */
export function classifyFailure(error: unknown, timeoutSignal: AbortSignal, callerSignal: AbortSignal | undefined): TransportError {
  if (error instanceof ResponseInterrupted) {
    // A response had begun: the request reached a server, and what came of the answer is kept.
    const inner = classifyFailure(error.cause, timeoutSignal, callerSignal);
    return new TransportError(inner.kind, inner.message, { cause: inner.cause, neverSent: false, received: inner.received ?? error.head });
  }
  if (error instanceof TransportError) return error;
  if (callerSignal?.aborted) return new TransportError('aborted', 'the request was aborted by the caller', { cause: error });
  if (timeoutSignal.aborted) return new TransportError('timeout', 'no complete response before the timeout', { cause: error });
  // fetch wraps the socket error in `cause`; node:http gives it directly.
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof TransportError) return e;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (TLS_ERROR_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_'))) {
      // The listed codes are the handshake's (certificate checks): nothing was written yet. Other
      // TLS errors may strike a connection that already carried the request.
      return new TransportError('tls', `TLS verification failed (${code})`, { cause: error, neverSent: TLS_ERROR_CODES.has(code) });
    }
  }
  let neverSent = false;
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NOT_CONNECTED_CODES.has(code)) neverSent = true;
  }
  const message = error instanceof Error ? (describeCause(error) ?? error.message) : String(error);
  return new TransportError('network', message, { cause: error, neverSent });
}

function describeCause(error: Error): string | undefined {
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error) return `${error.message}: ${(cause as { code?: string }).code ?? cause.message}`;
  const code = (error as { code?: string }).code;
  return code ? `${error.message} (${code})` : undefined;
}
