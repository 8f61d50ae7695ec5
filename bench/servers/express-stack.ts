/**
 * Baseline for the pipeline benchmark: a common Express stack doing checks comparable to Moondraft's
 * on the same GET, with the usual libraries:
 * - a Bearer token: jsonwebtoken RS256 verification with the algorithm pinned, issuer, audience,
 *   `typ` and the required claims checked, then a revocation lookup of its session (in memory, as
 *   Moondraft's embedded state);
 * - an API key: looked up among the issued keys, then the receive window (X-API-Recv-Window honoured),
 *   a timing-safe HMAC-SHA256 check over timestamp + METHOD + target + raw body, and a replay memory;
 * - then express-rate-limit per caller (fixed window, in memory), and the response headers of the
 *   contract (request id, server time, security headers, RateLimit).
 * What it does not do that Moondraft does: roles and scopes from a permission matrix, IP blocks and
 * per-key IP/country rules, metrics, a structured access log and the audit trail's access event.
 * Started as a child process by bench/pipeline.ts.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import jwt from 'jsonwebtoken';

const publicKey = readFileSync(process.env.BENCH_PUBLIC_KEY_FILE!, 'utf8');
/** apiKey → secret of every issued key. */
const keys = new Map<string, string>(Object.entries(JSON.parse(readFileSync(process.env.BENCH_KEYS_FILE!, 'utf8')) as Record<string, string>));
const issuer = process.env.BENCH_ISSUER!;
const audience = process.env.BENCH_AUDIENCE!;
/** Revoked session ids (none in the benchmark; looked up on every token request all the same). */
const revokedSessions = new Set<string>();
const seen = new Map<string, number>();
setInterval(() => {
  const cutoff = Date.now() - 65_000;
  for (const [k, t] of seen) if (t < cutoff) seen.delete(k);
}, 5_000).unref();

const REQUIRED_CLAIMS = ['exp', 'iat', 'jti', 'sub', 'sid', 'wallet', 'role', 'auth_time'] as const;

const app = express();
app.disable('x-powered-by');
app.disable('etag');

app.use((_req, res, next) => {
  res.set({
    'X-Request-Id': `req_${randomUUID().replace(/-/g, '')}`,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
    'X-API-Server-Time': String(Date.now()),
  });
  next();
});

app.use((req, res, next) => {
  const auth = req.headers.authorization;
  if (auth !== undefined && req.headers['x-api-key'] !== undefined) return res.status(400).json({ code: 'validation_failed' });
  if (auth?.startsWith('Bearer ')) {
    try {
      const token = jwt.verify(auth.slice(7), publicKey, { algorithms: ['RS256'], issuer, audience, complete: true });
      if (token.header.typ !== 'at+jwt') return res.status(401).json({ code: 'invalid_token' });
      const claims = token.payload as Record<string, unknown>;
      if (REQUIRED_CLAIMS.some((c) => claims[c] === undefined)) return res.status(401).json({ code: 'invalid_token' });
      if (revokedSessions.has(String(claims.sid))) return res.status(401).json({ code: 'token_revoked' });
      res.locals.caller = claims.sub;
      return next();
    } catch (err) {
      return res.status(401).json({ code: err instanceof jwt.TokenExpiredError ? 'token_expired' : 'invalid_token' });
    }
  }
  const key = req.headers['x-api-key'];
  const secret = typeof key === 'string' ? keys.get(key) : undefined;
  if (secret === undefined) return res.status(401).json({ code: 'invalid_api_key' });
  const ts = String(req.headers['x-api-timestamp'] ?? '');
  const sig = String(req.headers['x-api-signature'] ?? '');
  const window = req.headers['x-api-recv-window'] === undefined ? 5000 : Number(req.headers['x-api-recv-window']);
  const now = Date.now();
  if (!/^\d+$/.test(ts) || Number(ts) < now - window || Number(ts) > now + 1000) return res.status(401).json({ code: 'timestamp_out_of_window' });
  // GET: no body (Moondraft signs the raw body bytes; they are empty here).
  const expected = createHmac('sha256', secret).update(`${ts}${req.method}${req.originalUrl}`).digest('hex');
  if (sig.length !== expected.length || !timingSafeEqual(Buffer.from(sig), Buffer.from(expected))) return res.status(401).json({ code: 'invalid_signature' });
  const replayKey = `${key}:${sig}`;
  if (seen.has(replayKey)) return res.status(401).json({ code: 'replayed_request' });
  seen.set(replayKey, now);
  res.locals.caller = key;
  next();
});
app.use(rateLimit({ windowMs: 1000, limit: 1_000_000, standardHeaders: 'draft-8', legacyHeaders: false, keyGenerator: (_req, res) => String(res.locals.caller) }));
app.get('/api/v1/account', (_req, res) => {
  res.json({ id: 'acc_01JBENCH00000000000000000', wallet: '0x00000000000000000000000000000000000000b0', chain: 'ethereum', role: 'trader', createdAt: 1764345600000 });
});

const server = app.listen(Number(process.env.BENCH_PORT ?? 0), '127.0.0.1', () => {
  const addr = server.address() as { port: number };
  console.log(`listening http://127.0.0.1:${addr.port}`);
});

// A clean exit on SIGTERM, so that a CPU profile (BENCH_PIPELINE_PROFILE) is written.
process.once('SIGTERM', () => process.exit(0));
