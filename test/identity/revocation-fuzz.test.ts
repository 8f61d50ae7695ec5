import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { scopesAllowedForRole, type Role } from '../../src/security/rbac/roles.js';
import { code, createKey, session, signedInject, startKeysServer, type KeysTestServer } from '../keys/support.js';
import { prng } from '../support/prng.js';
import { dropSchema, newIsolation } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { ethereumWallet, postLogin, requestChallenge } from '../support/wallet.js';

/**
 * A seeded, concurrent fuzz of revocation and authorization across two scale-out servers sharing one
 * PostgreSQL schema and one Redis prefix. Each account has one serial "mutator" (sign-ins, refreshes,
 * reuse of spent refresh tokens, logouts, admin revoke-all, role changes by an admin, key create /
 * narrow / suspend / unsuspend / revoke / regenerate) while probers fire requests with every
 * credential of that account at either server. Each mutation's interval [start, end] and the account
 * state after it are recorded; a probe [start, end] may be answered with any state from the last
 * mutation that returned before it started to the last one that started before it ended, and no
 * other: revocation through shared state allows no window. Replay a failure with IDFUZZ_SEED.
 */
const scaleoutUp = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));
// A fixed seed by default (a CI run is repeatable); IDFUZZ_SEED=random draws a new one, or replays a given one.
const SEED = process.env.IDFUZZ_SEED === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.IDFUZZ_SEED ?? 20261130);

type KeyStatus = 'active' | 'suspended' | 'revoked';
interface KeyState {
  id: string;
  apiKey: string;
  status: KeyStatus;
  scopes: string[];
  /** The only secret in force (regeneration without grace). */
  secret: string;
}
interface SessionState {
  id: string;
  revoked: boolean;
}
interface Snapshot {
  role: Role;
  keys: Record<string, KeyState>;
  sessions: Record<string, SessionState>;
}
interface Mutation {
  start: number;
  end: number;
  op: string;
  after: Snapshot;
}
interface Probe {
  start: number;
  end: number;
  server: string;
  what: string;
  res: LightMyRequestResponse;
  /** Which credential: a session id and its access token, or a key id and the secret used. */
  session?: string;
  key?: string;
  secret?: string;
  method: string;
}

const ALL_SCOPES = ['market:read', 'orders:read', 'orders:write'];

function capped(scopes: string[], role: Role): string[] {
  const allowed = scopesAllowedForRole(role) as readonly string[];
  return scopes.filter((s) => allowed.includes(s));
}

describe.skipIf(!scaleoutUp)(`revocation and authorization fuzz across two scale-out servers (seed ${SEED})`, () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 3));
  const isolation = newIsolation();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-idfuzz-'));
  let servers: KeysTestServer[] = [];
  beforeAll(async () => {
    servers = [
      await startKeysServer({ backend: 'scaleout', clock, isolation, dataDir }),
      await startKeysServer({ backend: 'scaleout', clock, isolation, dataDir }),
    ];
  });
  afterAll(async () => {
    for (const s of servers) await s?.close();
    await dropSchema(isolation.pgSchema);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('no revoked, suspended, narrowed or demoted credential is served after the call that changed it returned', async () => {
    const rand = prng(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    let ip = 0;
    const addr = () => `10.77.${(ip >> 8) & 255}.${ip++ & 255}`;
    const five: string[] = [];
    const check5xx = (what: string, res: LightMyRequestResponse) => {
      if (res.statusCode >= 500) five.push(`${what}: ${res.statusCode} ${res.body}`);
    };
    const [a, b] = servers as [KeysTestServer, KeysTestServer];
    const admins = [await session(a, { role: 'admin' }), await session(b, { role: 'admin' })];

    const failures: string[] = [];
    const ACCOUNTS = 3;
    const MUTATIONS = 60;
    const results = await Promise.all(
      Array.from({ length: ACCOUNTS }, async (_, n) => {
        const wallet = ethereumWallet();
        const mutations: Mutation[] = [];
        const probes: Probe[] = [];
        const tokens = new Map<string, { access: string; refresh: string; spent: string[] }>();
        let snap: Snapshot = { role: 'trader', keys: {}, sessions: {} };
        const record = (op: string, start: number) => {
          mutations.push({ start, end: performance.now(), op, after: structuredClone(snap) });
        };

        const signIn = async (ks: KeysTestServer) => {
          const client = { remoteAddress: addr() };
          const ch = await requestChallenge(ks.server, wallet.address, 'ethereum', client);
          const res = await postLogin(ks.server, ch.message, await wallet.sign(ch.message), client);
          check5xx('login', res);
          if (res.statusCode !== 200) throw new Error(`login ${res.statusCode} ${res.body}`);
          const body = res.json();
          tokens.set(body.sessionId, { access: body.accessToken, refresh: body.refreshToken, spent: [] });
          snap.sessions[body.sessionId] = { id: body.sessionId, revoked: false };
          return body as { sessionId: string; account: { id: string } };
        };

        // Set up: one session, partner limits, two keys.
        const first = await signIn(a);
        await a.server.services.partnerLimits.set(first.account.id, { market: 100_000, trading: 100_000, account: 100_000, tokens: 100_000 }, 'test');
        record('setup', performance.now());
        const bearer = (sid: string) => ({ authorization: `Bearer ${tokens.get(sid)!.access}` });
        const liveSession = () => Object.values(snap.sessions).find((s) => !s.revoked)?.id;
        const newKey = async (ks: KeysTestServer) => {
          const sid = liveSession();
          if (!sid) return;
          const scopes = ALL_SCOPES.filter(() => rand() < 0.7);
          if (scopes.length === 0) scopes.push('market:read');
          const start = performance.now();
          const res = await ks.app.inject({ method: 'POST', url: '/api/v1/keys', headers: bearer(sid), payload: { label: `fuzz ${n}`, scopes } });
          check5xx('create key', res);
          if (res.statusCode === 201) {
            const k = res.json();
            snap.keys[k.id] = { id: k.id, apiKey: k.apiKey, status: 'active', scopes: k.scopes, secret: k.apiSecret };
          }
          record('create key', start);
        };
        await newKey(a);
        await newKey(b);

        let done = false;
        const mutator = async () => {
          for (let i = 0; i < MUTATIONS; i++) {
            const ks = pick(servers);
            const sid = liveSession();
            const keys = Object.values(snap.keys).filter((k) => k.status !== 'revoked');
            const key = keys.length ? pick(keys) : undefined;
            const r = rand();
            const start = performance.now();
            let op = '';
            if (r < 0.1 || !sid) {
              op = 'sign in';
              await signIn(ks);
            } else if (r < 0.2) {
              op = 'refresh';
              const t = tokens.get(sid)!;
              const res = await ks.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: t.refresh }, remoteAddress: addr() });
              check5xx(op, res);
              if (res.statusCode === 200) {
                t.spent.push(t.refresh);
                t.access = res.json().accessToken;
                t.refresh = res.json().refreshToken;
              } else failures.push(`refresh of a live session ${sid}: ${res.statusCode} ${res.body}`);
            } else if (r < 0.26) {
              // A spent refresh token presented again, on the other server at once.
              const t = tokens.get(sid)!;
              op = 'reuse spent refresh';
              if (t.spent.length === 0) {
                const spend = await ks.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: t.refresh }, remoteAddress: addr() });
                check5xx(op, spend);
                if (spend.statusCode !== 200) failures.push(`refresh before reuse ${sid}: ${spend.statusCode}`);
                t.spent.push(t.refresh);
                t.access = spend.json().accessToken;
                t.refresh = spend.json().refreshToken;
              }
              const other = servers[servers.indexOf(ks) ^ 1]!;
              const res = await other.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: pick(t.spent) }, remoteAddress: addr() });
              check5xx(op, res);
              if (res.statusCode !== 401 || code(res) !== 'refresh_token_reused') failures.push(`reuse of a spent refresh token of ${sid}: ${res.statusCode} ${res.body}`);
              snap.sessions[sid]!.revoked = true;
            } else if (r < 0.3) {
              // The same refresh token raced on both servers: at most one new pair.
              op = 'refresh race';
              const t = tokens.get(sid)!;
              const rs = await Promise.all(servers.map((s) => s.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken: t.refresh }, remoteAddress: addr() })));
              for (const x of rs) check5xx(op, x);
              const won = rs.filter((x) => x.statusCode === 200);
              if (won.length > 1) failures.push(`one refresh token rotated twice (${sid})`);
              t.spent.push(t.refresh);
              if (won[0]) {
                t.access = won[0].json().accessToken;
                t.refresh = won[0].json().refreshToken;
              }
              if (rs.some((x) => code(x) === 'refresh_token_reused')) snap.sessions[sid]!.revoked = true;
            } else if (r < 0.36) {
              op = 'logout';
              const res = await ks.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: bearer(sid), remoteAddress: addr() });
              check5xx(op, res);
              if (res.statusCode !== 204) failures.push(`logout ${sid}: ${res.statusCode} ${res.body}`);
              snap.sessions[sid]!.revoked = true;
            } else if (r < 0.41) {
              op = 'admin revoke-all';
              const res = await ks.app.inject({ method: 'POST', url: `/api/v1/admin/accounts/${wallet.address}/revoke-sessions`, headers: pick(admins).headers, payload: {} });
              check5xx(op, res);
              if (res.statusCode !== 200) failures.push(`revoke-sessions: ${res.statusCode} ${res.body}`);
              else for (const s of Object.values(snap.sessions)) s.revoked = true;
            } else if (r < 0.55) {
              const role = pick((['trader', 'developer', 'admin'] as const).filter((x) => x !== snap.role));
              op = `role → ${role}`;
              const res = await ks.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${wallet.address}/role`, headers: pick(admins).headers, payload: { role } });
              check5xx(op, res);
              if (res.statusCode === 200) snap.role = role;
              else failures.push(`role change: ${res.statusCode} ${res.body}`);
            } else if (r < 0.62 || !key) {
              op = 'create key';
              await newKey(ks);
              continue;
            } else {
              const k = key;
              const kr = rand();
              const admin = pick(admins).headers;
              let res: LightMyRequestResponse;
              if (kr < 0.25) {
                const scopes = k.scopes.filter(() => rand() < 0.5);
                if (scopes.length === 0) scopes.push(k.scopes[0]!);
                op = `narrow ${k.id} → ${scopes.join(',')}`;
                if (!sid) continue;
                res = await ks.app.inject({ method: 'PATCH', url: `/api/v1/keys/${k.id}`, headers: bearer(sid), payload: { scopes } });
                if (res.statusCode === 200) k.scopes = res.json().scopes;
              } else if (kr < 0.5) {
                op = `suspend ${k.id}`;
                res = await ks.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${k.id}/suspend`, headers: admin, payload: {} });
                if (res.statusCode === 200) k.status = 'suspended';
              } else if (kr < 0.7) {
                op = `unsuspend ${k.id}`;
                res = await ks.app.inject({ method: 'POST', url: `/api/v1/admin/keys/${k.id}/unsuspend`, headers: admin, payload: {} });
                if (res.statusCode === 200) k.status = 'active';
              } else if (kr < 0.85) {
                op = `regenerate ${k.id}`;
                if (!sid) continue;
                res = await ks.app.inject({ method: 'POST', url: `/api/v1/keys/${k.id}/regenerate`, headers: bearer(sid), payload: { gracePeriodSeconds: 0 } });
                if (res.statusCode === 200) k.secret = res.json().apiSecret;
              } else {
                op = `revoke ${k.id}`;
                if (!sid) continue;
                res = await ks.app.inject({ method: 'DELETE', url: `/api/v1/keys/${k.id}`, headers: bearer(sid) });
                if (res.statusCode === 200) k.status = 'revoked';
              }
              check5xx(op, res);
              // A developer may not give a key a trading scope (403 forbidden_role): nothing changed.
              if (res.statusCode !== 200 && !(op.startsWith('narrow') && code(res) === 'forbidden_role')) failures.push(`${op}: ${res.statusCode} ${res.body}`);
            }
            record(op, start);
          }
          done = true;
        };

        // Every credential ever issued to the account, with every secret ever issued to its keys.
        const secretsOf = new Map<string, Set<string>>();
        let signedProbes = 0;
        const prober = async () => {
          while (!done) {
            const ks = pick(servers);
            const server = ks === a ? 'a' : 'b';
            const sessions = [...tokens.keys()];
            const keyIds = Object.keys(snap.keys);
            for (const k of Object.values(snap.keys)) {
              if (!secretsOf.has(k.id)) secretsOf.set(k.id, new Set());
              secretsOf.get(k.id)!.add(k.secret);
            }
            if (rand() < 0.4 && sessions.length) {
              const sid = pick(sessions);
              const method = rand() < 0.5 ? 'GET' : 'POST';
              const opts = method === 'GET'
                ? { method: 'GET' as const, url: '/api/v1/market/probe', headers: bearer(sid) }
                : { method: 'POST' as const, url: '/api/v1/trading/probe', headers: { ...bearer(sid), 'content-type': 'application/json' }, payload: '{}' };
              const start = performance.now();
              const res = await ks.app.inject(opts);
              probes.push({ start, end: performance.now(), server, what: `${method} session ${sid}`, res, session: sid, method });
            } else if (keyIds.length) {
              const kid = pick(keyIds);
              const k = snap.keys[kid]!;
              // Each signed probe distinct (the manual clock repeats timestamps): never a replay.
              const nonce = ++signedProbes;
              const secret = rand() < 0.8 ? k.secret : pick([...secretsOf.get(kid)!]);
              const method = rand() < 0.5 ? 'GET' : 'POST';
              const opts = signedInject(ks, { apiKey: k.apiKey, secret }, method === 'GET' ? { url: `/api/v1/trading/probe?n=${nonce}` } : { method: 'POST', url: '/api/v1/trading/probe', body: `{"n":${nonce}}` });
              const start = performance.now();
              const res = await ks.app.inject(opts);
              probes.push({ start, end: performance.now(), server, what: `${method} key ${kid}`, res, key: kid, secret, method });
            } else await new Promise((r) => setImmediate(r));
          }
        };
        await Promise.all([mutator(), prober(), prober(), prober()]);
        return { mutations, probes, wallet: wallet.address };
      }),
    );

    for (const { mutations, probes, wallet } of results) {
      for (const p of probes) {
        check5xx(p.what, p.res);
        if (p.res.statusCode >= 500) continue;
        // The states this probe may see: from the last mutation that returned before it started…
        let lo = 0;
        for (let i = 0; i < mutations.length; i++) if (mutations[i]!.end < p.start) lo = i;
        // …to the last one that had started before it ended.
        let hi = lo;
        for (let i = lo; i < mutations.length; i++) if (mutations[i]!.start <= p.end) hi = i;
        const allowed = mutations.slice(lo, hi + 1).map((m) => m.after);
        const ok = p.res.statusCode === 200;
        const c = code(p.res);
        const body = ok ? (p.res.json() as { role?: string; scopes?: string[] }) : undefined;
        const fits = allowed.some((s) => {
          if (p.session !== undefined) {
            const st = s.sessions[p.session];
            if (!st) return false;
            if (st.revoked) return c === 'token_revoked';
            const trades = s.role === 'trader' || s.role === 'admin';
            if (p.method === 'POST') return trades ? ok && body?.role === s.role : c === 'forbidden_role';
            return ok && body?.role === s.role;
          }
          const k = s.keys[p.key!];
          if (!k) return false;
          if (k.status === 'revoked') return c === 'key_revoked';
          if (p.secret !== k.secret) return c === 'invalid_signature' || (k.status === 'suspended' && c === 'key_suspended');
          if (k.status === 'suspended') return c === 'key_suspended';
          const effective = capped(k.scopes, s.role);
          if (p.method === 'POST') {
            if (!effective.includes('orders:write')) return c === 'insufficient_scope' || c === 'forbidden_role';
          } else if (!effective.includes('orders:read')) return c === 'insufficient_scope' || c === 'forbidden_role';
          return ok && JSON.stringify(body?.scopes) === JSON.stringify(effective) && body?.role === s.role;
        });
        if (!fits) {
          const window = mutations.slice(lo, hi + 1).map((m) => `${m.op} [${m.start.toFixed(1)}, ${m.end.toFixed(1)}]`);
          failures.push(`${wallet} ${p.what} on ${p.server} [${p.start.toFixed(1)}, ${p.end.toFixed(1)}] → ${p.res.statusCode} ${p.res.body}; allowed states after: ${window.join(' | ')}`);
        }
      }
    }
    const total = results.reduce((n, r) => n + r.probes.length, 0);
    expect({ seed: SEED, fiveHundreds: five.slice(0, 10) }).toEqual({ seed: SEED, fiveHundreds: [] });
    expect({ seed: SEED, failures: failures.slice(0, 10), count: failures.length }).toEqual({ seed: SEED, failures: [], count: 0 });
    expect(total).toBeGreaterThan(100);
  }, 30_000);
});
