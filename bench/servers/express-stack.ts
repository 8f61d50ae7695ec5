/**
 * Baseline for the pipeline benchmark: a common Express stack doing checks comparable to ours on
 * the same GET — RS256 JWT verification with jsonwebtoken (pinned algorithm, issuer, audience), or an
 * HMAC-signed API-key request (receive window, timing-safe compare, replay memory), then
 * express-rate-limit per caller. Started as a child process by bench/pipeline.ts.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import jwt from 'jsonwebtoken';

const publicKey = readFileSync(process.env.BENCH_PUBLIC_KEY_FILE!, 'utf8');
const apiKey = process.env.BENCH_API_KEY!;
const apiSecret = process.env.BENCH_API_SECRET!;
const issuer = process.env.BENCH_ISSUER!;
const audience = process.env.BENCH_AUDIENCE!;
const seen = new Map<string, number>();
setInterval(() => {
  const cutoff = Date.now() - 65_000;
  for (const [k, t] of seen) if (t < cutoff) seen.delete(k);
}, 5_000).unref();

const app = express();
app.disable('x-powered-by');

app.use((req, res, next) => {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) {
    try {
      const claims = jwt.verify(auth.slice(7), publicKey, { algorithms: ['RS256'], issuer, audience }) as { sub: string };
      res.locals.caller = claims.sub;
      return next();
    } catch {
      return res.status(401).json({ code: 'invalid_token' });
    }
  }
  const key = req.headers['x-api-key'];
  if (key !== apiKey) return res.status(401).json({ code: 'invalid_api_key' });
  const ts = String(req.headers['x-api-timestamp'] ?? '');
  const sig = String(req.headers['x-api-signature'] ?? '');
  const now = Date.now();
  if (!/^\d+$/.test(ts) || Number(ts) < now - 5000 || Number(ts) > now + 1000) return res.status(401).json({ code: 'timestamp_out_of_window' });
  const expected = createHmac('sha256', apiSecret).update(`${ts}${req.method}${req.originalUrl}`).digest('hex');
  if (sig.length !== expected.length || !timingSafeEqual(Buffer.from(sig), Buffer.from(expected))) return res.status(401).json({ code: 'invalid_signature' });
  if (seen.has(sig)) return res.status(401).json({ code: 'replayed_request' });
  seen.set(sig, now);
  res.locals.caller = key;
  next();
});
app.use(rateLimit({ windowMs: 1000, limit: 1_000_000, standardHeaders: 'draft-8', legacyHeaders: false, keyGenerator: (_req, res) => String(res.locals.caller) }));
app.get('/api/v1/account', (_req, res) => {
  res.set('Cache-Control', 'no-store').json({ id: 'acc_bench', wallet: '0x0', chain: 'ethereum', role: 'trader', createdAt: 0 });
});

const server = app.listen(Number(process.env.BENCH_PORT ?? 0), '127.0.0.1', () => {
  const addr = server.address() as { port: number };
  console.log(`listening http://127.0.0.1:${addr.port}`);
});
