import { createHmac, createPublicKey, verify as verifySignature } from 'node:crypto';
import http, { type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/** One request as it arrived on the socket: the raw request target and the raw body bytes. */
export interface WireRequest {
  method: string;
  /** The request target exactly as received (path and query, undecoded). */
  target: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type WireHandler = (request: WireRequest, response: ServerResponse) => void | Promise<void>;

export interface WireServer {
  url: string;
  port: number;
  requests: WireRequest[];
  close(): Promise<void>;
}

/**
 * A small local HTTP(S) server standing in for Moondraft on the wire: it records every request
 * byte for byte and lets each test answer as it likes. It is not the Moondraft server.
 */
export async function startWireServer(handler: WireHandler, tls?: { key: string; cert: string }): Promise<WireServer> {
  const requests: WireRequest[] = [];
  const listener = (req: http.IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request: WireRequest = { method: req.method ?? '', target: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(request);
      Promise.resolve(handler(request, res)).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(599).end(String(error));
      });
    });
  };
  const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, listener) : http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let requestCounter = 0;

/** Sends JSON the way the server does: with X-Request-Id and, when a time is given, X-API-Server-Time. */
export function sendJson(res: ServerResponse, status: number, body: unknown, options: { serverTime?: number; headers?: Record<string, string> } = {}): void {
  const requestId = `req_test_${++requestCounter}`;
  const headers: Record<string, string> = { 'Content-Type': 'application/json', 'X-Request-Id': requestId, ...(options.headers ?? {}) };
  if (options.serverTime !== undefined) headers['X-API-Server-Time'] = String(options.serverTime);
  res.writeHead(status, headers).end(body === undefined ? '' : JSON.stringify(body));
}

/** Sends an RFC 9457 problem shaped like the server's (`{ type, title, status, detail, code, requestId }`). */
export function sendProblem(
  res: ServerResponse,
  status: number,
  code: string,
  detail: string,
  options: { serverTime?: number; headers?: Record<string, string>; extra?: Record<string, unknown> } = {},
): void {
  const requestId = `req_test_${++requestCounter}`;
  const headers: Record<string, string> = { 'Content-Type': 'application/problem+json', 'X-Request-Id': requestId, ...(options.headers ?? {}) };
  if (options.serverTime !== undefined) headers['X-API-Server-Time'] = String(options.serverTime);
  res
    .writeHead(status, headers)
    .end(JSON.stringify({ type: `https://moondraft.dev/problems/${code}`, title: `title of ${code}`, status, detail, code, requestId, ...(options.extra ?? {}) }));
}

/**
 * The server side of request signing, written independently of the SDK: HMAC-SHA256 keyed with the
 * secret's UTF-8 bytes over timestamp + METHOD + the raw target + the raw body bytes.
 */
export function expectedHmac(secret: string, request: WireRequest): string {
  const timestamp = String(request.headers['x-api-timestamp'] ?? '');
  return createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(Buffer.from(timestamp + request.method + request.target, 'utf8'))
    .update(request.body)
    .digest('hex');
}

export function hmacValid(secret: string, request: WireRequest): boolean {
  return request.headers['x-api-signature'] === expectedHmac(secret, request);
}

/** Verifies an ed25519 signature with node:crypto (not the SDK's @noble/curves). */
export function ed25519Valid(publicKeyHex: string, request: WireRequest): boolean {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyHex, 'hex').toString('base64url') }, format: 'jwk' });
  const timestamp = String(request.headers['x-api-timestamp'] ?? '');
  const message = Buffer.concat([Buffer.from(timestamp + request.method + request.target, 'utf8'), request.body]);
  const signature = Buffer.from(String(request.headers['x-api-signature'] ?? ''), 'hex');
  return signature.length === 64 && verifySignature(null, message, key, signature);
}

/** A server-side receive-window check like the contract's: at most `recvWindow` behind, 1 s ahead. */
export function timestampInWindow(request: WireRequest, serverNow: number, recvWindow = 5000): boolean {
  const ts = Number(request.headers['x-api-timestamp']);
  return Number.isSafeInteger(ts) && ts >= serverNow - recvWindow && ts <= serverNow + 1000;
}

/** A test sleep: records the delays and returns at once. */
export function recordingSleep(): { sleep: (ms: number) => Promise<void>; delays: number[] } {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}
