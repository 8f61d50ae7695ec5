import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS, type ErrorCode } from '../../src/errors/registry.js';
import { ManualClock } from '../../src/lib/clock.js';
import { rawExchange } from '../support/raw-http.js';
import { createKey, credentialOf, session, signatureFor, startKeysServer, type CreatedKey, type Credential, type KeysTestServer } from './support.js';
import { prng } from '../support/prng.js';

/**
 * Hostile values in the credential and signing headers (X-API-Key, X-API-Timestamp,
 * X-API-Signature, X-API-Recv-Window, Authorization), sent over a real socket so that Node's own
 * header handling (duplicates, optional whitespace, non-ASCII bytes, size limit) is what the
 * server sees. Every refusal must be a registered problem code with its status, never a 5xx, never
 * authenticated as anyone, and must change nothing: no funds, no key use, no spent signature.
 *
 * A fixed list of named cases, then seeded random mutations (FUZZ_SEED overrides the seed).
 * Embedded by default; FUZZ_BACKEND=scaleout runs the same on PostgreSQL and Redis.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 0x6d6f6f6e);
const RANDOM_CASES = 120;

const clock = new ManualClock(Date.UTC(2026, 2, 1, 12));
let ks: KeysTestServer;
let port: string;
let owner: Awaited<ReturnType<typeof session>>;
let other: Awaited<ReturnType<typeof session>>;
let key: CreatedKey;
let cred: Credential;

/** Codes of the contract (shared API.md) and of this server's documented additions (docs/API.md). */
const DOCUMENTED: readonly ErrorCode[] = [
  'validation_failed', 'unauthenticated', 'invalid_token', 'token_expired', 'token_revoked', 'refresh_token_reused',
  'invalid_api_key', 'key_revoked', 'key_expired', 'key_suspended', 'wrong_environment', 'invalid_signature',
  'signature_required', 'timestamp_out_of_window', 'replayed_request', 'ip_not_allowed', 'country_not_allowed',
  'ip_blocked', 'insufficient_scope', 'forbidden_role', 'rate_limited', 'temporarily_suspended', 'not_found',
  'conflict', 'insufficient_funds', 'daily_limit_exceeded', 'withdrawal_limit_exceeded', 'trading_halted',
  'account_isolated', 'payload_too_large', 'service_unavailable', 'internal_error', 'invalid_credentials',
  'session_required', 'step_up_required', 'method_not_allowed', 'unsupported_media_type', 'headers_too_large',
  'request_timeout', 'faucet_limit_exceeded', 'token_creation_limit_exceeded', 'key_limit_exceeded',
  'not_token_creator', 'address_not_allowed', 'four_eyes_required', 'https_required', 'open_orders_limit_exceeded',
];

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** One request over a new connection, header lines exactly as given (duplicates and whitespace kept). */
async function send(method: string, target: string, lines: readonly string[], body = ''): Promise<Answer> {
  const head = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...(body ? ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`] : []), ...lines];
  const { text } = await rawExchange(port, `${head.join('\r\n')}\r\n\r\n${body}`);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  const raw = text.slice(text.indexOf('\r\n\r\n') + 4);
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    parsed = { unparsed: raw.slice(0, 200) };
  }
  return { status, body: parsed };
}

/** A documented refusal, with the registry's status for its code, and one of `codes`. */
function expectRefused(what: string, res: Answer, codes: readonly ErrorCode[]): void {
  const code = res.body.code as ErrorCode;
  expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBeGreaterThanOrEqual(400);
  expect(res.status, `${what}: never a 5xx`).toBeLessThan(500);
  expect(codes, `${what}: code ${code} (${JSON.stringify(res.body.detail)})`).toContain(code);
  expect(DOCUMENTED, `${what}: documented code`).toContain(code);
  expect(res.status, `${what}: status of ${code}`).toBe(ERRORS[code].status);
  expect(res.body.kind, `${what}: never a principal`).toBeUndefined();
}

const FAUCET = '/api/v1/sandbox/faucet';
const FAUCET_BODY = '{"asset":"USDC","amount":"1"}';

/** The one exactly valid signed faucet request of a test: every hostile variant is built from it. */
function validFaucet(timestamp = String(clock.now())) {
  const signature = signatureFor(cred, timestamp, 'POST', FAUCET, FAUCET_BODY);
  return { timestamp, signature, lines: [`X-API-Key: ${cred.apiKey}`, `X-API-Timestamp: ${timestamp}`, `X-API-Signature: ${signature}`] };
}

async function usdc(account: typeof owner): Promise<string> {
  const res = await ks.app.inject({ method: 'GET', url: '/api/v1/account/balances', headers: account.headers });
  expect(res.statusCode).toBe(200);
  const row = (res.json() as { balances: { asset: string; total: string }[] }).balances.find((b) => b.asset === 'USDC');
  return row?.total ?? '0';
}

async function keyView(): Promise<{ lastUsedAt: number | null }> {
  const res = await ks.app.inject({ method: 'GET', url: `/api/v1/keys/${key.id}`, headers: owner.headers });
  expect(res.statusCode).toBe(200);
  return res.json() as { lastUsedAt: number | null };
}


beforeAll(async () => {
  ks = await startKeysServer({ clock, ...(process.env.FUZZ_BACKEND === 'scaleout' ? { backend: 'scaleout' as const } : {}) });
  owner = await session(ks);
  other = await session(ks);
  key = await createKey(ks, owner.headers, { label: 'fuzzed', scopes: ['market:read', 'account:read', 'orders:read', 'orders:write'] });
  cred = credentialOf(key);
  port = new URL(await ks.app.listen({ host: '127.0.0.1', port: 0 })).port;
});
afterAll(() => ks.close());

describe('API-key headers', () => {
  it('hostile variants of a signed request are refused with their code, change nothing, and do not spend its signature', async () => {
    const before = await usdc(owner);
    const v = validFaucet();
    const T = v.timestamp;
    const S = v.signature;
    const K = cred.apiKey;
    const withLines = (over: Record<string, string | readonly string[] | null>) => {
      const base: Record<string, string | readonly string[] | null> = { 'X-API-Key': K, 'X-API-Timestamp': T, 'X-API-Signature': S, ...over };
      return Object.entries(base).flatMap(([name, value]) => (value === null ? [] : typeof value === 'string' ? [`${name}: ${value}`] : value.map((x) => `${name}: ${x}`)));
    };
    const cases: [string, Record<string, string | readonly string[] | null>, ErrorCode][] = [
      // The key.
      ['empty key', { 'X-API-Key': '' }, 'invalid_api_key'],
      ['two keys, the same', { 'X-API-Key': [K, K] }, 'invalid_api_key'],
      ['two keys, one empty', { 'X-API-Key': [K, ''] }, 'invalid_api_key'],
      ['two keys, another after', { 'X-API-Key': [K, `md_test_${'1'.repeat(32)}`] }, 'invalid_api_key'],
      ['key with a comma list', { 'X-API-Key': `${K},${K}` }, 'invalid_api_key'],
      ['key with inner space', { 'X-API-Key': `${K.slice(0, 10)} ${K.slice(10)}` }, 'invalid_api_key'],
      ['key in upper case', { 'X-API-Key': K.toUpperCase() }, 'invalid_api_key'],
      ['key with one more character', { 'X-API-Key': `${K}z` }, 'invalid_api_key'],
      ['key cut short', { 'X-API-Key': K.slice(0, -1) }, 'invalid_api_key'],
      ['key id as key', { 'X-API-Key': key.id }, 'invalid_api_key'],
      ['secret as key', { 'X-API-Key': cred.secret! }, 'invalid_api_key'],
      ['live prefix on sandbox', { 'X-API-Key': K.replace('md_test_', 'md_live_') }, 'wrong_environment'],
      ['key with non-ASCII bytes', { 'X-API-Key': `${K}é` }, 'invalid_api_key'],
      ['very long key', { 'X-API-Key': `md_test_${'A'.repeat(8000)}` }, 'invalid_api_key'],
      // The timestamp (the signature stays the one over T).
      ['no timestamp', { 'X-API-Timestamp': null }, 'validation_failed'],
      ['empty timestamp', { 'X-API-Timestamp': '' }, 'validation_failed'],
      ['two timestamps, the same', { 'X-API-Timestamp': [T, T] }, 'validation_failed'],
      ['leading zero', { 'X-API-Timestamp': `0${T}` }, 'validation_failed'],
      ['plus sign', { 'X-API-Timestamp': `+${T}` }, 'validation_failed'],
      ['minus sign', { 'X-API-Timestamp': `-${T}` }, 'validation_failed'],
      ['decimal point', { 'X-API-Timestamp': `${T}.0` }, 'validation_failed'],
      ['exponent', { 'X-API-Timestamp': `${Number(T) / 1e12}e12` }, 'validation_failed'],
      ['hex', { 'X-API-Timestamp': `0x${Number(T).toString(16)}` }, 'validation_failed'],
      ['seconds, not ms', { 'X-API-Timestamp': T.slice(0, -3) }, 'timestamp_out_of_window'],
      ['microseconds', { 'X-API-Timestamp': `${T}000` }, 'timestamp_out_of_window'],
      ['16 nines', { 'X-API-Timestamp': '9'.repeat(16) }, 'timestamp_out_of_window'],
      ['huge', { 'X-API-Timestamp': '9'.repeat(400) }, 'validation_failed'],
      ['Infinity', { 'X-API-Timestamp': 'Infinity' }, 'validation_failed'],
      ['fullwidth digits', { 'X-API-Timestamp': T.replace(/\d/g, (d) => String.fromCharCode(0xff10 + Number(d))) }, 'validation_failed'],
      ['inner space', { 'X-API-Timestamp': `${T.slice(0, 4)} ${T.slice(4)}` }, 'validation_failed'],
      ['1 ms later than signed', { 'X-API-Timestamp': String(Number(T) + 1) }, 'invalid_signature'],
      ['6 s old', { 'X-API-Timestamp': String(Number(T) - 6000) }, 'timestamp_out_of_window'],
      ['2 s ahead', { 'X-API-Timestamp': String(Number(T) + 2000) }, 'timestamp_out_of_window'],
      // The receive window.
      ['empty window', { 'X-API-Recv-Window': '' }, 'validation_failed'],
      ['window 0', { 'X-API-Recv-Window': '0' }, 'validation_failed'],
      ['window too large', { 'X-API-Recv-Window': '60001' }, 'validation_failed'],
      ['window negative', { 'X-API-Recv-Window': '-5000' }, 'validation_failed'],
      ['window plus', { 'X-API-Recv-Window': '+5000' }, 'validation_failed'],
      ['window decimal', { 'X-API-Recv-Window': '5000.5' }, 'validation_failed'],
      ['window exponent', { 'X-API-Recv-Window': '5e3' }, 'validation_failed'],
      ['window hex', { 'X-API-Recv-Window': '0x1388' }, 'validation_failed'],
      ['window huge', { 'X-API-Recv-Window': '9'.repeat(30) }, 'validation_failed'],
      ['two windows', { 'X-API-Recv-Window': ['5000', '60000'] }, 'validation_failed'],
      // The signature.
      ['empty signature', { 'X-API-Signature': '' }, 'invalid_signature'],
      ['upper-case hex', { 'X-API-Signature': S.toUpperCase() }, 'invalid_signature'],
      ['0x prefix', { 'X-API-Signature': `0x${S}` }, 'invalid_signature'],
      ['one more hex digit', { 'X-API-Signature': `${S}0` }, 'invalid_signature'],
      ['one hex digit short', { 'X-API-Signature': S.slice(0, -1) }, 'invalid_signature'],
      ['not hex', { 'X-API-Signature': `${S.slice(0, -1)}g` }, 'invalid_signature'],
      ['base64 of it', { 'X-API-Signature': Buffer.from(S, 'hex').toString('base64') }, 'invalid_signature'],
      ['two signatures, the same', { 'X-API-Signature': [S, S] }, 'invalid_signature'],
      ['inner space', { 'X-API-Signature': `${S.slice(0, 32)} ${S.slice(32)}` }, 'invalid_signature'],
      ['non-ASCII', { 'X-API-Signature': `${S.slice(0, -1)}é` }, 'invalid_signature'],
      ['very long', { 'X-API-Signature': S.repeat(120) }, 'invalid_signature'],
      ['signature of another body', { 'X-API-Signature': signatureFor(cred, T, 'POST', FAUCET, '{"asset":"USDC","amount":"2"}') }, 'invalid_signature'],
      ['no signature', { 'X-API-Signature': null }, 'signature_required'],
      // With a session too.
      ['and a bearer token', { Authorization: `Bearer ${owner.accessToken}` }, 'validation_failed'],
      ['and an empty Authorization', { Authorization: '' }, 'validation_failed'],
    ];
    for (const [what, over, expected] of cases) {
      expectRefused(what, await send('POST', FAUCET, withLines(over), FAUCET_BODY), [expected]);
    }
    expect(await usdc(owner)).toBe(before);
    expect((await keyView()).lastUsedAt).toBeNull();

    // The valid request itself still goes through: none of the above spent its signature.
    const ok = await send('POST', FAUCET, v.lines, FAUCET_BODY);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(Number(await usdc(owner))).toBe(Number(before) + 1);
    expectRefused('the same again', await send('POST', FAUCET, v.lines, FAUCET_BODY), ['replayed_request']);
  });

  it('optional whitespace and tabs around values are not part of them (RFC 9110 §5.5): the request is the valid one', async () => {
    const v = validFaucet(String(clock.now() - 1));
    const res = await send('POST', FAUCET, [`X-API-Key: \t${cred.apiKey} \t`, `X-API-Timestamp:\t${v.timestamp}  `, `X-API-Signature:   ${v.signature}\t`, 'X-API-Recv-Window: \t5000\t'], FAUCET_BODY);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it('a receive window with leading zeros is still that many milliseconds', async () => {
    const v = validFaucet(String(clock.now() - 6000));
    expectRefused('6 s old, default window', await send('POST', FAUCET, v.lines, FAUCET_BODY), ['timestamp_out_of_window']);
    const res = await send('POST', FAUCET, [...v.lines, 'X-API-Recv-Window: 010000'], FAUCET_BODY);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it(`seeded random mutations (seed ${SEED}) of a signed request never authenticate and change nothing`, async () => {
    const before = await usdc(owner);
    const random = prng(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const v = validFaucet(String(clock.now() - 2));
    const valid: Record<string, string> = { 'X-API-Key': cred.apiKey, 'X-API-Timestamp': v.timestamp, 'X-API-Signature': v.signature };
    const pieces = ['', ' ', '\t', '0', '-', '+', '.', 'e', 'x', ',', ', ', 'é', '\u00ff', 'A', 'f', '9', '==', ';', '"', 'Bearer '];
    const mutate = (value: string): string => {
      switch (Math.floor(random() * 7)) {
        case 0: return pick(pieces) + value;
        case 1: return value + pick(pieces);
        case 2: { const at = Math.floor(random() * value.length); return value.slice(0, at) + pick(pieces) + value.slice(at + 1); }
        case 3: return value.slice(0, Math.floor(random() * value.length));
        case 4: return value.toUpperCase();
        case 5: return `${value}, ${value}`;
        default: return pick(pieces).repeat(1 + Math.floor(random() * 40));
      }
    };
    let sent = 0;
    for (let i = 0; i < RANDOM_CASES; i++) {
      const headers = { ...valid };
      const lines: string[] = [];
      const name = pick(Object.keys(valid));
      headers[name] = mutate(headers[name]!);
      // A value that only differs by the optional whitespace around it is the valid one.
      if (headers[name]!.replace(/^[ \t]+|[ \t]+$/g, '') === valid[name]) continue;
      for (const [n, value] of Object.entries(headers)) lines.push(`${n}: ${value}`);
      if (random() < 0.2) lines.push(`X-API-Recv-Window: ${mutate('5000')}`);
      const res = await send('POST', FAUCET, lines, FAUCET_BODY);
      expectRefused(`case ${i}: ${JSON.stringify(lines)}`, res, ['invalid_api_key', 'wrong_environment', 'validation_failed', 'invalid_signature', 'timestamp_out_of_window', 'signature_required']);
      sent++;
    }
    expect(sent).toBeGreaterThan(RANDOM_CASES / 2);
    expect(await usdc(owner)).toBe(before);
    const ok = await send('POST', FAUCET, v.lines, FAUCET_BODY);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });
});

describe('ed25519 signatures', () => {
  it('one spelling only: upper case, a malleated S, padding or the wrong length are invalid_signature, and nothing is spent', async () => {
    const { secretKey, publicKey } = ed25519.keygen();
    const ed = await createKey(ks, owner.headers, { label: 'fuzzed ed', type: 'ed25519', publicKey: Buffer.from(publicKey).toString('hex'), scopes: ['orders:write'] });
    const edCred: Credential = { apiKey: ed.apiKey, edSecretKey: secretKey };
    const before = await usdc(owner);
    const T = String(clock.now() - 3);
    const S = signatureFor(edCred, T, 'POST', FAUCET, FAUCET_BODY);
    // S + L: the same signature with its scalar half shifted by the group order (RFC 8032 §5.1.7 refuses it).
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const sBytes = Buffer.from(S.slice(64), 'hex');
    const sPlusL = BigInt(`0x${Buffer.from(sBytes).reverse().toString('hex')}`) + L;
    const malleated = S.slice(0, 64) + Buffer.from(sPlusL.toString(16).padStart(64, '0'), 'hex').reverse().toString('hex');
    for (const [what, signature] of [
      ['upper case', S.toUpperCase()],
      ['S + L', malleated],
      ['one byte short', S.slice(0, -2)],
      ['one byte more', `${S}00`],
      ['hmac length', S.slice(0, 64)],
      ['two of them', `${S}, ${S}`],
      ['zeros', '0'.repeat(128)],
    ] as const) {
      const res = await send('POST', FAUCET, [`X-API-Key: ${ed.apiKey}`, `X-API-Timestamp: ${T}`, `X-API-Signature: ${signature}`], FAUCET_BODY);
      expectRefused(what, res, ['invalid_signature']);
    }
    expect(await usdc(owner)).toBe(before);
    const ok = await send('POST', FAUCET, [`X-API-Key: ${ed.apiKey}`, `X-API-Timestamp: ${T}`, `X-API-Signature: ${S}`], FAUCET_BODY);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });
});

describe('Authorization', () => {
  const PROBE = '/api/v1/trading/probe';

  /** A token signed with the server's own active key, with claims and header changed. */
  async function forged(change: { payload?: JWTPayload; header?: Record<string, unknown>; drop?: string[] } = {}): Promise<string> {
    const { kid, privateKey } = ks.server.services.signingKeys.active();
    const claims: JWTPayload = { ...(owner.claims as unknown as JWTPayload), ...change.payload };
    for (const name of change.drop ?? []) delete claims[name];
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid, ...change.header } as { alg: string }).sign(privateKey);
  }

  function unsignedJwt(header: Record<string, unknown>, signature = ''): string {
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    return `${enc(header)}.${enc(owner.claims)}.${signature}`;
  }

  it('the valid token, with the scheme in any letter case, is the owner (control)', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      const res = await send('GET', PROBE, [`Authorization: ${scheme} ${owner.accessToken}`]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ kind: 'session', accountId: owner.account.id });
    }
  });

  it('more than one space after the scheme is still the token (RFC 6750 §2.1: "Bearer" 1*SP b64token)', async () => {
    for (const value of [`Bearer  ${owner.accessToken}`, `bearer    ${owner.accessToken}`]) {
      const res = await send('GET', PROBE, [`Authorization: ${value}`]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ kind: 'session', accountId: owner.account.id });
    }
  });

  it('hostile Authorization values are refused as invalid_token (or token_expired), never a principal', async () => {
    const t = owner.accessToken;
    const [h, p, s] = t.split('.') as [string, string, string];
    const { kid } = ks.server.services.signingKeys.active();
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const hsSecret = new TextEncoder().encode(createPublicKey(ks.server.services.signingKeys.active().privateKey).export({ type: 'spki', format: 'pem' }).toString());
    const claims = owner.claims as unknown as JWTPayload;
    const cases: [string, string[], ErrorCode][] = [
      ['empty', ['Authorization: '], 'invalid_token'],
      ['scheme only', ['Authorization: Bearer'], 'invalid_token'],
      ['scheme and spaces', ['Authorization: Bearer    '], 'invalid_token'],
      ['no scheme', [`Authorization: ${t}`], 'invalid_token'],
      ['another scheme', [`Authorization: Basic ${t}`], 'invalid_token'],
      ['scheme glued', [`Authorization: Bearer${t}`], 'invalid_token'],
      ['tab after the scheme', [`Authorization: Bearer\t${t}`], 'invalid_token'],
      ['two tokens', [`Authorization: Bearer ${t} ${other.accessToken}`], 'invalid_token'],
      ['a comma list', [`Authorization: Bearer ${t}, Bearer ${other.accessToken}`], 'invalid_token'],
      ['quoted', [`Authorization: Bearer "${t}"`], 'invalid_token'],
      ['one more character', [`Authorization: Bearer ${t}A`], 'invalid_token'],
      ['signature changed', [`Authorization: Bearer ${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`], 'invalid_token'],
      ['payload of another account', [`Authorization: Bearer ${h}.${other.accessToken.split('.')[1]}.${s}`], 'invalid_token'],
      ['non-ASCII', [`Authorization: Bearer ${t}é`], 'invalid_token'],
      // Control characters are not HTTP: Node's parser refuses the request before any stage.
      ['a control character', [`Authorization: Bearer \u0001${t}`], 'validation_failed'],
      ['a NUL byte', [`Authorization: Bearer ${t}\u0000`], 'validation_failed'],
      ['a bare CR', [`Authorization: Bearer ${t}\rX-API-Key: ${cred.apiKey}`], 'validation_failed'],
      ['very long', [`Authorization: Bearer ${'a'.repeat(6000)}.${'b'.repeat(6000)}.c`], 'invalid_token'],
      ['past the header limit', [`Authorization: Bearer ${'a'.repeat(20000)}.b.c`], 'headers_too_large'],
      ['alg none, no signature', [`Authorization: Bearer ${unsignedJwt({ alg: 'none', typ: 'at+jwt', kid })}`], 'invalid_token'],
      ['alg none, some signature', [`Authorization: Bearer ${unsignedJwt({ alg: 'none', typ: 'at+jwt', kid }, 'x')}`], 'invalid_token'],
      ['HS256 keyed with the public key', [`Authorization: Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid }).sign(hsSecret)}`], 'invalid_token'],
      ['a kid that does not exist', [`Authorization: Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'no-such-kid' }).sign(stranger)}`], 'invalid_token'],
      ['a stranger key under our kid', [`Authorization: Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid }).sign(stranger)}`], 'invalid_token'],
      ['kid __proto__', [`Authorization: Bearer ${await forged({ header: { kid: '__proto__' } })}`], 'invalid_token'],
      ['no kid', [`Authorization: Bearer ${await forged({ header: { kid: undefined } })}`], 'invalid_token'],
      ['another audience', [`Authorization: Bearer ${await forged({ payload: { aud: 'another-api' } })}`], 'invalid_token'],
      ['two other audiences', [`Authorization: Bearer ${await forged({ payload: { aud: ['another-api', 'x'] } })}`], 'invalid_token'],
      ['another issuer', [`Authorization: Bearer ${await forged({ payload: { iss: 'https://evil.example' } })}`], 'invalid_token'],
      ['typ JWT', [`Authorization: Bearer ${await forged({ header: { typ: 'JWT' } })}`], 'invalid_token'],
      ['without sid', [`Authorization: Bearer ${await forged({ drop: ['sid'] })}`], 'invalid_token'],
      ['an unknown role', [`Authorization: Bearer ${await forged({ payload: { role: 'root' } })}`], 'invalid_token'],
      ['expired', [`Authorization: Bearer ${await forged({ payload: { iat: claims.iat! - 7200, exp: claims.iat! - 3600 } })}`], 'token_expired'],
      ['issued in the future', [`Authorization: Bearer ${await forged({ payload: { iat: claims.iat! + 3600, exp: claims.exp! + 3600 } })}`], 'invalid_token'],
      ['the API key as a token', [`Authorization: Bearer ${cred.apiKey}`], 'invalid_token'],
      ['the key id as a token', [`Authorization: Bearer ${key.id}`], 'invalid_token'],
      ['the secret as a token', [`Authorization: Bearer ${cred.secret}`], 'invalid_token'],
      ['the session id as a token', [`Authorization: Bearer ${owner.sessionId}`], 'invalid_token'],
      ['a bearer token and an API key', [`Authorization: Bearer ${t}`, `X-API-Key: ${cred.apiKey}`], 'validation_failed'],
      ['a bearer token and an empty API key', [`Authorization: Bearer ${t}`, 'X-API-Key: '], 'validation_failed'],
    ];
    for (const [what, lines, expected] of cases) {
      expectRefused(what, await send('GET', PROBE, lines), [expected]);
    }
  });

  it('two Authorization headers are refused, whichever comes first and even when both are the same', async () => {
    const mine = `Authorization: Bearer ${owner.accessToken}`;
    const theirs = `Authorization: Bearer ${other.accessToken}`;
    for (const [what, lines] of [
      ['mine then theirs', [mine, theirs]],
      ['theirs then mine', [theirs, mine]],
      ['mine then garbage', [mine, 'Authorization: garbage']],
      ['mine then empty', [mine, 'Authorization: ']],
      ['empty then mine', ['Authorization: ', mine]],
      ['mine twice', [mine, mine]],
      ['mine, then in lower case', [mine, mine.replace('Authorization', 'authorization')]],
    ] as const) {
      expectRefused(what, await send('GET', PROBE, lines), ['invalid_token']);
    }
  });

  it('a second Authorization after a thousand other headers is seen and refused too', async () => {
    // Node stores about the first thousand header lines of a request and drops the rest without a
    // word; within the 16 KiB header limit a client can send far more than that.
    const filler = Array.from({ length: 1500 }, (_, i) => `a${i % 10}:`);
    for (const [what, lines] of [
      ['mine, filler, theirs', [`Authorization: Bearer ${owner.accessToken}`, ...filler, `Authorization: Bearer ${other.accessToken}`]],
      ['mine, filler, garbage', [`Authorization: Bearer ${owner.accessToken}`, ...filler, 'Authorization: garbage']],
    ] as const) {
      expectRefused(what, await send('GET', PROBE, lines), ['invalid_token']);
    }
  });

  it(`seeded random mutations (seed ${SEED}) of a valid token never authenticate`, async () => {
    const random = prng(SEED ^ 0x5a5a);
    const t = owner.accessToken;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ é,';
    for (let i = 0; i < RANDOM_CASES; i++) {
      const at = Math.floor(random() * t.length);
      const ch = alphabet[Math.floor(random() * alphabet.length)]!;
      const token = random() < 0.5 ? t.slice(0, at) + ch + t.slice(at + 1) : t.slice(0, at) + ch + t.slice(at);
      if (token === t) continue;
      // A changed base64url character in the last position may decode to the same bytes: then
      // the token is refused or the owner, never anyone else.
      const res = await send('GET', PROBE, [`Authorization: Bearer ${token}`]);
      if (res.status === 200) {
        expect(res.body, `case ${i}: ${token}`).toMatchObject({ kind: 'session', accountId: owner.account.id });
        continue;
      }
      expectRefused(`case ${i}: ${token}`, res, ['invalid_token']);
    }
  });
});

describe('after all of the above', () => {
  it('no credential sent in any header appears in the server log', () => {
    const log = ks.server.logText();
    expect(log.length).toBeGreaterThan(0);
    for (const secret of [cred.secret!, cred.apiKey, owner.accessToken, other.accessToken, owner.accessToken.split('.')[2]!]) {
      expect(log.includes(secret), secret.slice(0, 12)).toBe(false);
    }
  });
});
