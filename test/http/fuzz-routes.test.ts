import { createHash } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ERRORS } from '../../src/errors/registry.js';
import { ManualClock } from '../../src/lib/clock.js';
import { PERMISSIONS, scopesAllowedForRole, type Permission, type Role, type Scope } from '../../src/security/rbac/roles.js';
import { hmacSignatureHex } from '../../src/security/signing/index.js';
import { randomWallet, sessionFor } from '../support/auth.js';
import { rawExchange } from '../support/raw-http.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { fund, listMoon, USDC } from '../support/trading.js';
import { prng } from '../support/prng.js';

/**
 * Input robustness of every registered route. Each route (Fastify's own list, recorded by an
 * onRoute hook as in permission-matrix.test.ts) gets malformed and hostile input from a caller it
 * admits (a session of an allowed role, or that role's signed API key when the matrix takes keys):
 * wrong JSON types, JSON numbers for amounts, huge strings, deep nesting, unicode and NUL bytes,
 * duplicate and extra keys, bad path parameters, odd query strings, bad content types, empty and
 * oversized bodies. Whatever it sends:
 *  - never a 5xx;
 *  - every refusal is problem+json with a registered code, the code's status and the request id;
 *  - a string field sent as another JSON type (an amount as a JSON number) is refused;
 *  - a refused request changes nothing in the store (row counts and a hash of every table but
 *    the audit trail's, which records every request), and the ledger verifies.
 * The cases are drawn from a fixed seed, so a failure reproduces.
 */
const registered = vi.hoisted(() => [] as import('../support/route-recorder.js').RecordedRoute[]);
vi.mock('fastify', async (importOriginal) => (await import('../support/route-recorder.js')).recordingFastify(await importOriginal<typeof import('fastify')>(), registered));

const SEED = 0x6d6f6f6e;
/** Draws from the seeded generator (test/support/prng.ts), so every run draws the same cases. */
function generator(seed: number) {
  const next = prng(seed);
  return { next, pick: <T,>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!, sample: <T,>(xs: readonly T[], n: number): T[] => [...xs].sort(() => next() - 0.5).slice(0, n) };
}

const nested = (depth: number, leaf: unknown = 1): unknown => {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
};

/** Values that replace one field of an otherwise valid body. */
const FIELD_VALUES: readonly unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  12345678901234567890,
  100,
  '',
  ' ',
  '\u0000',
  'x\u0000y',
  '\u202eevil',
  '\ud800',
  '𝓜𝓸𝓸𝓷 🚀',
  'é',
  '\r\n',
  'a'.repeat(5000),
  '9'.repeat(400),
  '1e3',
  '0x10',
  '-0',
  '00.1',
  '.5',
  '1.',
  ' 1',
  'NaN',
  'Infinity',
  '-1',
  "' OR '1'='1' --",
  '<script>alert(1)</script>',
  '../../etc/passwd',
  '%00',
  '__proto__',
  [],
  ['a'],
  {},
  { $gt: '' },
  nested(64),
];

/** Sent in every field of every body: the values a store or a parser is likeliest to trip on. */
const ALWAYS: readonly unknown[] = [12345, null, 'x\u0000y', '\ud800', 'a'.repeat(5000), ['a'], { a: 1 }];

/** Bodies as raw text (or bytes), whatever the route. */
const RAW_BODIES: readonly (string | Buffer)[] = [
  ' ',
  'null',
  'true',
  '0',
  '"text"',
  '[]',
  '[{}]',
  '{',
  '{"a":',
  'not json',
  '{}x',
  "{'a':1}",
  '{"a":1,}',
  '[' .repeat(20_000) + ']'.repeat(20_000),
  '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000),
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
  Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]),
  '\u0000',
  '{"a":"\\u0000"}',
];

const CONTENT_TYPES: readonly (string | undefined)[] = [
  undefined,
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'APPLICATION/JSON',
  'application/jsonx',
  'application/vnd.api+json',
  'application/json, text/plain',
  '',
  ';;;',
];

/** Path parameter values; `raw` ones are sent on a socket exactly as written (no URL normalisation). */
const PARAM_VALUES: readonly { value: string; raw?: boolean }[] = [
  { value: 'a'.repeat(150) },
  { value: 'a'.repeat(201) },
  { value: 'A'.repeat(5000) },
  { value: '..' },
  { value: '.' },
  { value: '..', raw: true },
  { value: '%2e%2e' },
  { value: '%2e%2e%2f%2e%2e%2fetc%2fpasswd' },
  { value: '..%2f..%2fpackage.json', raw: true },
  { value: '%2F' },
  { value: '%00' },
  { value: 'x%00y' },
  { value: '%zz' },
  { value: '%' },
  { value: '%C3%A9' },
  { value: '%F0%9F%9A%80' },
  { value: '%ED%A0%80' },
  { value: '%FF' },
  { value: 'é', raw: true },
  { value: '🚀', raw: true },
  { value: '%20' },
  { value: '+' },
  { value: '__proto__' },
  { value: 'constructor' },
  { value: '-1' },
  { value: '0' },
  { value: 'key_' + 'a'.repeat(26) },
  { value: 'ord_' + '0'.repeat(26) },
  { value: "'%20OR%201=1--" },
  { value: '%3Cscript%3E' },
];

/** Query strings, for any route (`{f}`: a field the route's schema declares). */
const QUERY_FOR_FIELD: readonly string[] = [
  '{f}=1&{f}=2',
  '{f}=a&{f}=b',
  '{f}[]=1',
  '{f}[0]=1&{f}[1]=2',
  '{f}[a]=1',
  '{f}=',
  '{f}',
  `{f}=${'9'.repeat(1000)}`,
  `{f}=${'a'.repeat(3000)}`,
  '{f}=%00',
  '{f}=%FF',
  '{f}=%zz',
  '{f}=%C3%A9',
  '{f}=-1',
  '{f}=1e3',
  '{f}=0x10',
  '{f}=1.5',
  '{f}=9007199254740993',
  '{f}=99999999999999999999',
  '{f}=true',
  '{f}=null',
  '{f}=undefined',
  '{f}=%5B%5D',
  '{f}=%7B%7D',
  '{f}=+1',
  '{f}=%201',
];
const QUERY_ALWAYS: readonly string[] = ['{f}=x%00y', '{f}=%ED%A0%80', '{f}=1&{f}=2', `{f}=${'9'.repeat(1000)}`];
const QUERY_ANY: readonly string[] = ['zzz=1', '__proto__=1', '__proto__[x]=1', 'constructor=x', '&&&', '=1', '%00=1', 'a=1&a=2&a=3', `${'k'.repeat(2000)}=1`, '?', '#frag'];

type Key = { apiKey: string; secret: string };
type Session = Awaited<ReturnType<typeof sessionFor>>;
type Credential = { kind: 'none' } | { kind: 'session'; session: () => Promise<Session> } | { kind: 'key'; key: Key; signed: boolean };

interface Sent {
  method: string;
  url: string;
  body?: string | Buffer;
  contentType?: string | undefined;
  raw?: boolean;
  /** A JSON value of another type in place of a string field: must be refused (400). */
  mustRefuse?: boolean;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const scaleout = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

describe.each([
  ['embedded', true],
  ['scaleout', scaleout],
] as const)('every registered route against hostile input (%s)', (backend, available) => {
  let server: TestServer;
  let port: number;
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  const sessions = new Map<Role, Session>();
  const keys = new Map<Role, Key>();
  /** Parameters that name real things (so the handler, not only validation, sees the hostile input). */
  const real: Record<string, string> = {};

  const inject = (method: string, url: string, headers: Record<string, string>, payload?: unknown) =>
    server.app.inject({ method: method as 'GET', url, headers, ...(payload !== undefined ? { payload: payload as object } : {}) });

  beforeAll(async () => {
    if (!available) return;
    server = await startTestServer({
      clock,
      backend,
      // The loopback the fuzzer sends from is exempt from automatic blocks and per-address
      // ceilings (the default, said here since the suite depends on it): thousands of 4xx from one
      // address are the point here, not an attack to block.
      env: { MOONDRAFT_DDOS_EXEMPT: '127.0.0.0/8,::1' },
    });
    port = Number(new URL(await server.app.listen({ host: '127.0.0.1', port: 0 })).port);
    for (const role of ['trader', 'developer', 'admin', 'auditor'] as const) {
      const s = await sessionFor(server, { role: role === 'auditor' ? 'developer' : role });
      await server.services.partnerLimits.set(s.account.id, { market: 100_000, trading: 100_000, account: 100_000, tokens: 100_000 }, 'test');
      const created = await inject('POST', '/api/v1/keys', s.headers, { label: `fuzz ${role}`, scopes: scopesAllowedForRole(role), ipWhitelist: ['127.0.0.1'] });
      expect(created.statusCode, created.body).toBe(201);
      keys.set(role, { apiKey: created.json().apiKey, secret: created.json().apiSecret });
      if (role === 'auditor') await server.services.accounts.setRole(s.account.wallet, 'auditor', 'test');
      sessions.set(role, s);
    }
    const trader = sessions.get('trader')!;
    const admin = sessions.get('admin')!;
    await listMoon(server.services.trading, 'FUZZ');
    await fund(server.services.trading, trader.account.id, 'USDC', USDC('100000'));
    await fund(server.services.trading, trader.account.id, 'FUZZ', USDC('1000'));
    const order = await inject('POST', '/api/v1/trading/orders', trader.headers, { market: 'FUZZ-USDC', side: 'buy', type: 'limit', price: '1', quantity: '10' });
    expect(order.statusCode, order.body).toBe(201);
    expect((await inject('PUT', `/api/v1/admin/accounts/${trader.account.wallet}/withdrawal-tier`, admin.headers, { tier: 1 })).statusCode).toBe(200);
    const withdrawal = await inject('POST', '/api/v1/account/withdrawals', trader.headers, { asset: 'USDC', amount: '2000', address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed' });
    expect(withdrawal.json(), withdrawal.body).toMatchObject({ status: 'pending' });
    const saved = await inject('POST', '/api/v1/account/withdrawal-addresses', trader.headers, { chain: 'evm', address: '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359' });
    expect(saved.statusCode, saved.body).toBe(201);
    const spare = await inject('POST', '/api/v1/keys', trader.headers, { label: 'spare', scopes: ['market:read'] });
    const token = await inject('POST', '/api/v1/tokens', trader.headers, { name: 'Fuzz token', symbol: 'FZT', decimals: 6, supply: '1000' });
    expect(token.statusCode, token.body).toBe(201);
    const victim = await sessionFor(server);
    const victimKey = await inject('POST', '/api/v1/keys', victim.headers, { label: 'victim', scopes: ['market:read'] });
    Object.assign(real, {
      orderId: order.json().id,
      withdrawalId: withdrawal.json().id,
      addressId: saved.json().id,
      keyId: spare.json().id,
      victimKeyId: victimKey.json().id,
      victim: victim.account.wallet,
    });
  }, 60_000);
  afterAll(async () => {
    if (available) await server.close();
  });

  /** A body that the route accepts, or nearly: each case changes one thing of it. */
  function baseBody(method: string, url: string): Record<string, unknown> | undefined {
    const bodies: Record<string, Record<string, unknown>> = {
      'POST /api/v1/auth/challenge': { address: randomWallet(), chain: 'ethereum' },
      'POST /api/v1/auth/login': { message: 'moondraft.test wants you to sign in', signature: '0x00' },
      'POST /api/v1/auth/refresh': { refreshToken: 'mdr_AAAA' },
      'POST /api/v1/keys': { label: 'fuzz', scopes: ['market:read'] },
      'PATCH /api/v1/keys/:id': { label: 'fuzz' },
      'POST /api/v1/keys/:id/regenerate': { gracePeriodSeconds: 0 },
      'POST /api/v1/trading/orders': { market: 'FUZZ-USDC', side: 'buy', type: 'limit', price: '0.5', quantity: '2', timeInForce: 'GTC' },
      'POST /api/v1/trading/positions/:asset/close': { clientOrderId: 'close-1' },
      'POST /api/v1/account/withdrawals': { asset: 'USDC', amount: '1', address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed' },
      'POST /api/v1/account/withdrawal-addresses': { chain: 'evm', address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', label: 'mine' },
      'PUT /api/v1/account/withdrawal-addresses/settings': { enabled: false },
      'POST /api/v1/tokens': { name: 'Other', symbol: 'OTH', decimals: 6, supply: '1000' },
      'PATCH /api/v1/tokens/:symbol': { description: 'fuzzed' },
      'POST /api/v1/sandbox/faucet': { asset: 'USDC', amount: '1' },
      'PUT /api/v1/admin/accounts/:address/role': { role: 'trader' },
      'PUT /api/v1/admin/accounts/:address/limits': { market: 10 },
      'PUT /api/v1/admin/accounts/:address/trading-limit': { dailyNotional: '1000' },
      'PUT /api/v1/admin/accounts/:address/open-orders-limit': { maxOpenOrders: 500 },
      'PUT /api/v1/admin/accounts/:address/withdrawal-tier': { tier: 1 },
      'POST /api/v1/admin/keys/:id/suspend': { reason: 'fuzz' },
      'POST /api/v1/admin/keys/:id/unsuspend': {},
      'POST /api/v1/admin/ip-blocks': { target: '198.51.100.0/24', durationSec: 60 },
      'POST /api/v1/admin/assets': { symbol: 'NEWA', name: 'New asset', decimals: 6 },
      'POST /api/v1/admin/markets': { base: 'FZT', quote: 'USDC', tickSize: '0.01', lotSize: '1', minNotional: '1' },
      'POST /api/v1/admin/withdrawals/:id/approve': {},
      'POST /api/v1/admin/withdrawals/:id/reject': { reason: 'fuzz' },
    };
    return bodies[`${method} ${url}`];
  }

  /**
   * Puts back what an accepted case changed, so that the next case meets the same state (a key
   * suspended by one case would make every later suspension a no-op).
   */
  async function prepare(method: string, url: string): Promise<void> {
    const key = real.victimKeyId!;
    const admin = sessions.get('admin')!.account.id;
    if (`${method} ${url}` === 'POST /api/v1/admin/keys/:id/suspend') await server.services.apiKeys.unsuspend(key, admin);
    if (`${method} ${url}` === 'POST /api/v1/admin/keys/:id/unsuspend') await server.services.apiKeys.suspend(key, admin, 'fuzz');
  }

  /** Path parameters: mostly real things, so that a valid request would act on them. */
  function params(url: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [, name] of url.matchAll(/:(\w+)/g)) {
      out[name!] =
        name === 'address' ? real.victim!
        : name === 'market' ? 'FUZZ-USDC'
        : name === 'asset' ? 'FUZZ'
        : name === 'symbol' ? 'FZT'
        : url.startsWith('/api/v1/keys/') ? real.keyId!
        : url.startsWith('/api/v1/admin/keys/') ? real.victimKeyId!
        : url.startsWith('/api/v1/security/sessions/') ? 'ses_missing'
        : url.startsWith('/api/v1/trading/orders/') ? real.orderId!
        : url.includes('withdrawal-addresses') ? real.addressId!
        : real.withdrawalId!;
    }
    return out;
  }
  const fill = (url: string, p: Record<string, string>) => url.replace(/:(\w+)/g, (_, n: string) => p[n]!).replace(/\*$/, p['*'] ?? 'index.html');

  /** Who sends it: a role the matrix admits, by session or (when keys may) its signed key. */
  function credentialFor(permission: Permission, rand: ReturnType<typeof generator>, url: string): Credential {
    if (permission === 'public') return { kind: 'none' };
    const rule = PERMISSIONS[permission] as { roles: readonly Role[]; scope: Scope | null; unsignedKeyAllowed?: boolean };
    const role = (['trader', 'admin', 'developer', 'auditor'] as const).find((r) => rule.roles.includes(r))!;
    // Logout revokes the session it is sent with: a fresh one each time.
    const session = url === '/api/v1/auth/logout' ? () => sessionFor(server, { wallet: sessions.get(role)!.account.wallet, role }) : async () => sessions.get(role)!;
    if (rule.scope === null || rand.next() < 0.5) return { kind: 'session', session };
    return { kind: 'key', key: keys.get(role)!, signed: !rule.unsignedKeyAllowed || rand.next() < 0.5 };
  }

  async function send(sent: Sent, credential: Credential): Promise<Answer> {
    clock.advance(3);
    const body = sent.body ?? '';
    const headers: Record<string, string> = {};
    if (sent.contentType !== undefined) headers['content-type'] = sent.contentType;
    // light-my-request parses the URL (WHATWG): the server sees, and the signature covers, that form.
    const target = sent.raw ? sent.url : (() => {
      const u = new URL(sent.url, 'http://localhost');
      return u.pathname + u.search;
    })();
    if (credential.kind === 'session') headers.authorization = (await credential.session()).headers.authorization;
    if (credential.kind === 'key') {
      headers['x-api-key'] = credential.key.apiKey;
      if (credential.signed) {
        const timestamp = String(clock.now());
        headers['x-api-timestamp'] = timestamp;
        headers['x-api-signature'] = hmacSignatureHex(credential.key.secret, { timestamp, method: sent.method, pathWithQuery: target, body });
      }
    }
    if (sent.raw) {
      const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
      const head = [`${sent.method} ${sent.url} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `Content-Length: ${bytes.length}`].join('\r\n');
      const { text } = await rawExchange(port, `${head}\r\n\r\n${bytes.toString('latin1')}`);
      const [h = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = h.split('\r\n');
      const hs = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      return { status: Number(statusLine.split(' ')[1]), headers: hs, body: Buffer.from(rest.join('\r\n\r\n'), 'latin1').toString('utf8') };
    }
    const res: LightMyRequestResponse = await server.app.inject({ method: sent.method as 'GET', url: target, headers, ...(sent.body !== undefined ? { payload: sent.body } : {}) });
    return { status: res.statusCode, headers: res.headers as Answer['headers'], body: res.body };
  }

  /** What is wrong with an answer, if anything. */
  function faults(sent: Sent, res: Answer): string[] {
    const out: string[] = [];
    if (!Number.isInteger(res.status) || res.status >= 500) out.push(`status ${res.status}`);
    if (!String(res.headers['x-request-id'] ?? '').startsWith('req_')) out.push('no X-Request-Id');
    if (sent.mustRefuse && res.status < 400) out.push(`accepted (${res.status}) a body it must refuse (a string field sent as another JSON type, or a repeated key)`);
    if (res.status >= 400) {
      if (!String(res.headers['content-type'] ?? '').startsWith('application/problem+json')) out.push(`content-type ${res.headers['content-type']}`);
      try {
        const p = JSON.parse(res.body) as { code?: string; status?: number; requestId?: string };
        if (!Object.hasOwn(ERRORS, p.code ?? '')) out.push(`unregistered code ${p.code}`);
        else if (ERRORS[p.code as keyof typeof ERRORS].status !== res.status) out.push(`code ${p.code} with status ${res.status}`);
        if (p.requestId !== res.headers['x-request-id']) out.push('requestId differs from X-Request-Id');
        if (sent.mustRefuse && p.code !== 'validation_failed') out.push(`a body it must refuse answered ${p.code}, not validation_failed`);
      } catch {
        out.push(`body is not JSON: ${res.body.slice(0, 80)}`);
      }
    }
    return out;
  }

  /**
   * The store's content, table by table (row count and a hash of the rows), without the audit
   * trail (every request leaves its access event there) and the use stamps that a request
   * refused after authentication legitimately moves (a key's or session's last use).
   */
  async function snapshot(): Promise<Map<string, string>> {
    const db = server.services.store.db;
    // The tables of this server's own schema, asked directly: Kysely's introspector scans every
    // schema of the database and fails when another suite drops its own meanwhile.
    const listed =
      server.services.store.dialect === 'postgres'
        ? await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = ${server.config.pgSchema} and table_type = 'BASE TABLE'`.execute(db)
        : await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`.execute(db);
    const tables = listed.rows.map((t) => t.name).filter((t) => !t.startsWith('audit_') && !t.startsWith('fuzz_') && !t.startsWith('kysely_') && !t.startsWith('moondraft_migration')).sort();
    const out = new Map<string, string>();
    if (server.services.store.dialect === 'postgres') {
      // One round trip: per table, its row count and an md5 of its rows in a fixed order.
      const parts = tables.map(
        (t) => sql`select ${t}::text as t, count(*)::text || ':' || md5(coalesce(string_agg((to_jsonb(x) - 'last_used_at' - 'last_signed_at')::text, ',' order by (to_jsonb(x) - 'last_used_at' - 'last_signed_at')::text), '')) as h from ${sql.table(t)} x`,
      );
      const rows = (await sql<{ t: string; h: string }>`${sql.join(parts, sql` union all `)}`.execute(db)).rows;
      for (const r of rows) out.set(r.t, r.h);
      return out;
    }
    for (const t of tables) {
      const rows = (await sql<Record<string, unknown>>`select * from ${sql.table(t)}`.execute(db)).rows.map((r) => {
        const { last_used_at: _u, last_signed_at: _s, ...rest } = r;
        return JSON.stringify(rest, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      });
      rows.sort();
      out.set(t, `${rows.length}:${createHash('sha256').update(rows.join('\n')).digest('hex').slice(0, 16)}`);
    }
    return out;
  }
  /**
   * A counter every write to those tables moves (triggers installed by the test): the full
   * snapshot is taken again only when it moved, so most refusals cost one small read.
   */
  async function installChangeCounter(): Promise<void> {
    const db = server.services.store.db;
    const tables = [...(await snapshot()).keys()];
    // Every table the routes write is watched (a listing that found none would watch nothing).
    expect(tables).toEqual(expect.arrayContaining(['accounts', 'api_keys', 'sessions', 'ledger_entries', 'balances', 'orders', 'fills', 'tokens', 'withdrawals', 'ip_blocks']));
    await sql`create table fuzz_changes (n bigint not null)`.execute(db);
    await sql`insert into fuzz_changes (n) values (0)`.execute(db);
    if (server.services.store.dialect === 'postgres') {
      await sql`create function fuzz_bump() returns trigger language plpgsql as $$ begin update fuzz_changes set n = n + 1; return null; end $$`.execute(db);
      for (const t of tables) await sql`create trigger ${sql.id(`fuzz_${t}`)} after insert or update or delete or truncate on ${sql.table(t)} for each statement execute function fuzz_bump()`.execute(db);
      return;
    }
    for (const t of tables) {
      for (const op of ['insert', 'update', 'delete']) {
        await sql`create trigger ${sql.id(`fuzz_${t}_${op}`)} after ${sql.raw(op)} on ${sql.table(t)} begin update fuzz_changes set n = n + 1; end`.execute(db);
      }
    }
  }
  const changeCount = async () => String((await sql<{ n: unknown }>`select n from fuzz_changes`.execute(server.services.store.db)).rows[0]!.n);

  const changed = (a: Map<string, string>, b: Map<string, string>) => [...new Set([...a.keys(), ...b.keys()])].filter((t) => a.get(t) !== b.get(t));

  /** Every case for one route, drawn from the seed. */
  function casesFor(route: (typeof registered)[number], rand: ReturnType<typeof generator>): Sent[] {
    // Parsing, content types and raw bodies are the same code on both backends: the scale-out
    // run (slower per request) spends its time on what reaches the store and shared state.
    const thorough = backend === 'embedded';
    const { method } = route;
    const p = params(route.url);
    const url = fill(route.url, p);
    const base = baseBody(method, route.url);
    const schema = route.schema ?? {};
    const bodySchema = schema.body as { properties?: Record<string, { type?: string; anyOf?: unknown }> } | undefined;
    const queryFields = Object.keys((schema.querystring as { properties?: object } | undefined)?.properties ?? {});
    const json = 'application/json';
    const cases: Sent[] = [];
    const takesBody = method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE';

    if (takesBody) {
      const b = base ?? {};
      const fields = [...new Set([...Object.keys(b), ...Object.keys(bodySchema?.properties ?? {})])];
      // One field replaced by a hostile value (and each field missing).
      for (const field of fields) {
        const fieldType = bodySchema?.properties?.[field]?.type;
        for (const value of [...ALWAYS, ...rand.sample(FIELD_VALUES, thorough ? 8 : 3)]) {
          cases.push({ method, url, contentType: json, body: JSON.stringify({ ...b, [field]: value }), mustRefuse: fieldType === 'string' && typeof value !== 'string' });
        }
        const { [field]: _gone, ...without } = b;
        cases.push({ method, url, contentType: json, body: JSON.stringify(without) });
        // Duplicate keys: a hostile value first and the valid one last, and the other way round;
        // and the valid value twice. All refused (I-JSON: a reader keeping the first would see another request).
        if (field in b) {
          const inner = JSON.stringify(b).slice(1, -1);
          cases.push({ method, url, contentType: json, body: `{${JSON.stringify(field)}:${JSON.stringify(rand.pick(FIELD_VALUES))},${inner}}`, mustRefuse: true });
          cases.push({ method, url, contentType: json, body: `{${inner},${JSON.stringify(field)}:${JSON.stringify(rand.pick(FIELD_VALUES))}}`, mustRefuse: true });
          cases.push({ method, url, contentType: json, body: `{${inner},${JSON.stringify(field)}:${JSON.stringify(b[field])}}`, mustRefuse: true });
        }
      }
      // Extra fields, and the whole body as other JSON or not JSON at all.
      cases.push({ method, url, contentType: json, body: JSON.stringify({ ...b, extra: 1 }) });
      cases.push({ method, url, contentType: json, body: JSON.stringify({ ...b, ['x'.repeat(300)]: '<b>' }) });
      if (thorough) {
        for (const raw of RAW_BODIES) cases.push({ method, url, contentType: json, body: raw });
        cases.push({ method, url, contentType: json, body: JSON.stringify({ ...b, pad: 'x'.repeat(64 * 1024) }) });
        for (const ct of CONTENT_TYPES) cases.push({ method, url, contentType: ct, body: JSON.stringify(b) });
      }
      cases.push({ method, url, contentType: json, body: '' });
      cases.push({ method, url });
    } else {
      // A body where none belongs.
      cases.push({ method, url, contentType: json, body: '{"a":1}' });
      cases.push({ method, url, contentType: 'text/plain', body: 'hello' });
    }

    // Bad path parameters, one at a time.
    for (const name of Object.keys(p)) {
      for (const v of rand.sample(PARAM_VALUES, thorough ? 12 : 8)) {
        cases.push({ method, url: fill(route.url, { ...p, [name]: v.value }), raw: v.raw, ...(base ? { contentType: json, body: JSON.stringify(base) } : {}) });
      }
    }
    if (route.url.endsWith('*')) {
      for (const v of PARAM_VALUES.filter((x) => x.value.includes('..') || x.value.includes('%2'))) cases.push({ method, url: fill(route.url, { '*': v.value }), raw: v.raw });
    }
    // Odd query strings.
    const withBody = base ? { contentType: json, body: JSON.stringify(base) } : {};
    for (const f of queryFields) {
      for (const q of [...QUERY_ALWAYS, ...rand.sample(QUERY_FOR_FIELD, thorough ? 8 : 4)]) cases.push({ method, url: `${url}?${q.replaceAll('{f}', f)}`, ...withBody });
    }
    if (queryFields.length > 1) cases.push({ method, url: `${url}?${queryFields.map((f) => `${f}=`).join('&')}`, ...withBody });
    for (const q of rand.sample(QUERY_ANY, 4)) cases.push({ method, url: `${url}?${q}`, ...withBody });
    return cases;
  }

  it.skipIf(!available)('never a 5xx, always a registered problem, and a refusal changes nothing', async () => {
    const rand = generator(SEED);
    // Each server of the file registers its routes: every route once.
    const routes = [...new Map(registered.filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS').map((r) => [`${r.method} ${r.url}`, r])).values()];
    expect(routes.length).toBeGreaterThan(70);
    const found: string[] = [];
    let before = await snapshot();
    await installChangeCounter();
    let count = await changeCount();
    let sentCount = 0;
    for (const route of routes) {
      const permission = (route.permission ?? 'public') as Permission;
      for (const sent of casesFor(route, rand)) {
        const credential = credentialFor(permission, rand, route.url);
        await prepare(route.method, route.url);
        if ((await changeCount()) !== count) {
          before = await snapshot();
          count = await changeCount();
        }
        const res = await send(sent, credential);
        sentCount++;
        const where = `${route.method} ${route.url} [${credential.kind}${credential.kind === 'key' && !credential.signed ? ' unsigned' : ''}] ${sent.method} ${sent.url.slice(0, 120)} ${sent.contentType ?? '-'} ${String(sent.body ?? '').slice(0, 100)}`;
        for (const f of faults(sent, res)) found.push(`${where} → ${f}`);
        const now = await changeCount();
        if (now !== count) {
          const after = await snapshot();
          if (res.status >= 400) {
            const diff = changed(before, after);
            if (diff.length > 0) found.push(`${where} → refused (${res.status}) but changed ${diff.join(', ')}`);
          }
          before = after;
          count = now;
        }
      }
      const ledger = await server.services.trading.ledger.verify();
      if (!ledger.ok) found.push(`${route.method} ${route.url} → ledger: ${ledger.violation}`);
    }
    expect(sentCount).toBeGreaterThan(backend === 'embedded' ? 3000 : 1500);
    expect(found.slice(0, 60)).toEqual([]);
  }, 120_000);
});
