import { ed25519 } from '@noble/curves/ed25519.js';
import { Type } from '@sinclair/typebox';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildServer } from '../../src/http/server.js';
import type { App } from '../../src/http/types.js';
import type { Role } from '../../src/security/rbac/roles.js';
import { canonicalMessage, hmacSignatureHex } from '../../src/security/signing/index.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer, type TestServerOptions } from '../support/server.js';

/**
 * A test server plus a second Fastify app on the same services with probe routes for permissions
 * whose real routes belong to other features (market data, trading, withdrawals). Both apps share
 * store, shared state, caches and logger, so either may be used; `app` is the one with probes.
 */
export interface KeysTestServer {
  server: TestServer;
  app: App;
  close(): Promise<void>;
}

export async function startKeysServer(options: TestServerOptions = {}): Promise<KeysTestServer> {
  const server = await startTestServer(options);
  const app = await buildServer(server.services);
  const echo = async (request: { principal: unknown }) => {
    const p = request.principal as { kind: string; accountId?: string; keyId?: string; scopes?: string[]; signed?: boolean; role?: string };
    return { kind: p.kind, accountId: p.accountId, keyId: p.keyId, scopes: p.scopes, signed: p.signed, role: p.role };
  };
  const Echo = { 200: Type.Object({ kind: Type.String(), accountId: Type.Optional(Type.String()), keyId: Type.Optional(Type.String()), scopes: Type.Optional(Type.Array(Type.String())), signed: Type.Optional(Type.Boolean()), role: Type.Optional(Type.String()) }) };
  const Body = Type.Object({ note: Type.Optional(Type.String()), n: Type.Optional(Type.Integer()) }, { additionalProperties: false });
  app.get('/api/v1/market/probe', { config: { permission: 'market:read' }, schema: { hide: true, response: Echo } }, echo);
  app.post('/api/v1/trading/probe', { config: { permission: 'orders:write' }, schema: { hide: true, body: Body, querystring: Type.Object({}, { additionalProperties: true }), response: Echo } }, echo);
  app.get('/api/v1/trading/probe', { config: { permission: 'orders:read' }, schema: { hide: true, querystring: Type.Object({}, { additionalProperties: true }), response: Echo } }, echo);
  app.post('/api/v1/account/withdrawals/probe', { config: { permission: 'withdrawals:write' }, schema: { hide: true, body: Body, querystring: Type.Object({}, { additionalProperties: true }), response: Echo } }, echo);
  await app.ready();
  return {
    server,
    app,
    async close() {
      await app.close();
      await server.close();
    },
  };
}

export interface CreatedKey {
  id: string;
  apiKey: string;
  apiSecret?: string;
  scopes: string[];
  effectiveScopes: string[];
  status: string;
  [k: string]: unknown;
}

/**
 * A session whose account has partner limits far above the defaults: these suites test keys, not
 * rate limits, and send more than 25 account requests per second (test/ratelimit tests limits).
 */
export async function session(ks: KeysTestServer, options: { role?: Role; wallet?: string } = {}) {
  const s = await sessionFor(ks.server, options);
  await ks.server.services.partnerLimits.set(s.account.id, { market: 100_000, trading: 100_000, account: 100_000, tokens: 100_000 }, 'test');
  return s;
}

export async function createKey(ks: KeysTestServer, headers: Record<string, string>, body: Record<string, unknown>): Promise<CreatedKey> {
  const res = await ks.app.inject({ method: 'POST', url: '/api/v1/keys', headers, payload: body });
  if (res.statusCode !== 201) throw new Error(`create key failed: ${res.statusCode} ${res.body}`);
  return res.json() as CreatedKey;
}

export interface Credential {
  apiKey: string;
  /** hmac secret, or an ed25519 secret key (32 bytes). */
  secret?: string;
  edSecretKey?: Uint8Array;
}

export interface SignedOptions {
  method?: string;
  url: string;
  body?: string;
  timestamp?: number | string;
  recvWindow?: string;
  remoteAddress?: string;
  headers?: Record<string, string>;
  /** Sign something else than what is sent (to test what breaks a signature). */
  sign?: { method?: string; url?: string; body?: string; timestamp?: string };
  /** Leave out the signature headers (unsigned request). */
  unsigned?: boolean;
}

export function signatureFor(cred: Credential, timestamp: string, method: string, url: string, body: string): string {
  if (cred.edSecretKey) {
    return Buffer.from(ed25519.sign(canonicalMessage({ timestamp, method, pathWithQuery: url, body }), cred.edSecretKey)).toString('hex');
  }
  if (!cred.secret) throw new Error('credential without secret');
  return hmacSignatureHex(cred.secret, { timestamp, method, pathWithQuery: url, body });
}

// Tests run on a ManualClock: successive requests get distinct timestamps (a few ms in the past,
// well inside the window) so that they are not copies of one another.
let seq = 0;

/** The headers and inject options of a (signed) API-key request. */
export function signedInject(ks: KeysTestServer, cred: Credential, o: SignedOptions): InjectOptions {
  const method = o.method ?? 'GET';
  const body = o.body ?? '';
  const timestamp = String(o.timestamp ?? ks.server.services.clock.now() - (seq++ % 2000));
  const headers: Record<string, string> = { 'x-api-key': cred.apiKey, ...(o.headers ?? {}) };
  if (!o.unsigned) {
    headers['x-api-timestamp'] = timestamp;
    headers['x-api-signature'] = signatureFor(cred, o.sign?.timestamp ?? timestamp, o.sign?.method ?? method, o.sign?.url ?? o.url, o.sign?.body ?? body);
    if (o.recvWindow !== undefined) headers['x-api-recv-window'] = o.recvWindow;
  }
  if (body !== '') headers['content-type'] = 'application/json';
  return { method: method as InjectOptions['method'], url: o.url, headers, ...(body !== '' ? { payload: body } : {}), ...(o.remoteAddress ? { remoteAddress: o.remoteAddress } : {}) };
}

export function signed(ks: KeysTestServer, cred: Credential, o: SignedOptions): Promise<LightMyRequestResponse> {
  return ks.app.inject(signedInject(ks, cred, o));
}

export function credentialOf(key: CreatedKey): Credential {
  return { apiKey: key.apiKey, ...(key.apiSecret ? { secret: key.apiSecret } : {}) };
}

export function code(res: LightMyRequestResponse): string | undefined {
  return res.statusCode >= 400 ? (res.json() as { code?: string }).code : undefined;
}
