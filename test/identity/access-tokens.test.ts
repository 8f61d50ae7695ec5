import { createHmac, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { generateSigningKey, writeKeysetFile } from '../../src/security/identity/signing-keys.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

const clock = new ManualClock(Date.UTC(2026, 3, 1, 9));
let server: TestServer;
let claims: JWTPayload & Record<string, unknown>;
let kid: string;

beforeAll(async () => {
  server = await startTestServer({ clock });
  const s = await sessionFor(server);
  claims = { ...s.claims };
  kid = server.services.signingKeys.active().kid;
});
afterAll(() => server.close());

async function call(token: string) {
  const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, code: res.json().code as string | undefined };
}

/** Signs arbitrary claims and header with the server's real active key. */
function signReal(payload: Record<string, unknown>, header: Record<string, unknown> = {}) {
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid, ...header }).sign(server.services.signingKeys.active().privateKey);
}

describe('access-token attacks are refused', () => {
  it('a genuine token is accepted (the baseline the attacks start from)', async () => {
    expect(await call(await signReal(claims))).toEqual({ status: 200, code: undefined });
  });

  it('alg: none', async () => {
    const unsigned = `${b64({ alg: 'none', typ: 'at+jwt', kid })}.${b64({ ...claims, role: 'admin' })}`;
    expect(await call(`${unsigned}.`)).toEqual({ status: 401, code: 'invalid_token' });
    expect(await call(`${unsigned}.AAAA`)).toEqual({ status: 401, code: 'invalid_token' });
  });

  it('HS256 signed with the RSA public key as the HMAC secret', async () => {
    const publicPem = createPublicKey(server.services.signingKeys.active().privateKey).export({ type: 'spki', format: 'pem' }).toString();
    const jwk = server.services.signingKeys.jwks(clock.now()).keys.find((k) => k.kid === kid)!;
    for (const secret of [publicPem, JSON.stringify(jwk), jwk.n!]) {
      const input = `${b64({ alg: 'HS256', typ: 'at+jwt', kid })}.${b64({ ...claims, role: 'admin' })}`;
      const token = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
      expect(await call(token)).toEqual({ status: 401, code: 'invalid_token' });
    }
  });

  it('another RS alg with the real key (RS512, PS256)', async () => {
    const privateKey = server.services.signingKeys.active().privateKey;
    for (const alg of ['RS512', 'PS256']) {
      const token = await new SignJWT(claims).setProtectedHeader({ alg, typ: 'at+jwt', kid }).sign(privateKey);
      expect(await call(token)).toEqual({ status: 401, code: 'invalid_token' });
    }
  });

  it('unknown kid, missing kid, and a foreign key claiming our kid', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const foreign = (header: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', ...header }).sign(privateKey);
    expect(await call(await foreign({ kid: 'k-attacker' }))).toEqual({ status: 401, code: 'invalid_token' });
    expect(await call(await foreign({}))).toEqual({ status: 401, code: 'invalid_token' });
    expect(await call(await foreign({ kid }))).toEqual({ status: 401, code: 'invalid_token' });
    expect(await call(await signReal(claims, { kid: '../../../etc/passwd' }))).toEqual({ status: 401, code: 'invalid_token' });
  });

  it('wrong typ (a plain JWT or an ID token is not an access token)', async () => {
    expect(await call(await signReal(claims, { typ: 'JWT' }))).toEqual({ status: 401, code: 'invalid_token' });
    expect(await call(await signReal(claims, { typ: undefined }))).toEqual({ status: 401, code: 'invalid_token' });
  });

  it('wrong iss or aud', async () => {
    expect(await call(await signReal({ ...claims, iss: 'https://evil.example' }))).toEqual({ status: 401, code: 'invalid_token' });
    expect(await call(await signReal({ ...claims, aud: 'another-api' }))).toEqual({ status: 401, code: 'invalid_token' });
    expect(await call(await signReal({ ...claims, aud: ['another-api'] }))).toEqual({ status: 401, code: 'invalid_token' });
  });

  it('missing required claims (exp, jti, sid, sub)', async () => {
    for (const drop of ['exp', 'jti', 'sid', 'sub', 'role', 'wallet']) {
      const { [drop]: _dropped, ...rest } = claims;
      expect(await call(await signReal(rest)), drop).toEqual({ status: 401, code: 'invalid_token' });
    }
  });

  it('not yet valid: nbf or iat in the future beyond the tolerance', async () => {
    const now = Math.floor(clock.now() / 1000);
    expect(await call(await signReal({ ...claims, nbf: now + 120 }))).toEqual({ status: 401, code: 'invalid_token' });
    expect(await call(await signReal({ ...claims, iat: now + 120, exp: now + 3720 }))).toEqual({ status: 401, code: 'invalid_token' });
    // within the 30 s tolerance a slightly fast issuer clock is fine
    expect((await call(await signReal({ ...claims, iat: now + 10, exp: now + 3610 }))).status).toBe(200);
  });

  it('a lifetime longer than allowed (exp far beyond iat)', async () => {
    const now = Math.floor(clock.now() / 1000);
    expect(await call(await signReal({ ...claims, iat: now - 7200, exp: now + 86_400 }))).toEqual({ status: 401, code: 'token_expired' });
  });

  it('tampered payload (role raised to admin, signature kept)', async () => {
    const token = await signReal(claims);
    const [h, , sig] = token.split('.');
    expect(await call(`${h}.${b64({ ...claims, role: 'admin' })}.${sig}`)).toEqual({ status: 401, code: 'invalid_token' });
    // one flipped bit in the signature
    const flipped = `${sig!.slice(0, -2)}${sig!.at(-2) === 'A' ? 'B' : 'A'}${sig!.at(-1)}`;
    expect(await call(`${h}.${token.split('.')[1]}.${flipped}`)).toEqual({ status: 401, code: 'invalid_token' });
  });

  it('expired, after the clock tolerance; accepted just inside it', async () => {
    const { accessToken } = await sessionFor(server);
    expect((await call(accessToken)).status).toBe(200); // also puts it in the verified-token cache
    clock.advance(3600_000 + 20_000);
    expect((await call(accessToken)).status).toBe(200);
    clock.advance(11_000);
    expect(await call(accessToken)).toEqual({ status: 401, code: 'token_expired' });
  });
});

describe('the verified-token cache', () => {
  it('is bounded and never outlives a token or its key', async () => {
    const c = new ManualClock(Date.UTC(2026, 3, 2));
    const small = await startTestServer({ clock: c, env: { MOONDRAFT_TOKEN_CACHE_SIZE: '2' } });
    try {
      const tokens = await Promise.all([1, 2, 3].map(() => sessionFor(small)));
      for (const t of tokens) expect((await small.services.accessTokens.verify(t.accessToken)).ok).toBe(true);
      const cache = (small.services.accessTokens as unknown as { cache: Map<string, unknown> }).cache;
      expect(cache.size).toBe(2);
      // A key removed from the keyset (emergency) takes its cached tokens with it.
      writeKeysetFile(small.config.jwtKeysFile, [generateSigningKey(c.now())]);
      await small.services.signingKeys.reload();
      expect(await small.services.accessTokens.verify(tokens[2]!.accessToken)).toMatchObject({ ok: false, code: 'invalid_token' });
      // A cached token still expires: past exp the full verification (with its tolerance) decides.
      const fresh = await sessionFor(small);
      expect((await small.services.accessTokens.verify(fresh.accessToken)).ok).toBe(true);
      c.advance(3600_000 + 31_000);
      expect(await small.services.accessTokens.verify(fresh.accessToken)).toMatchObject({ ok: false, code: 'token_expired' });
    } finally {
      await small.close();
    }
  });

  it('can be switched off', async () => {
    const off = await startTestServer({ env: { MOONDRAFT_TOKEN_CACHE_SIZE: '0' } });
    try {
      const s = await sessionFor(off);
      expect((await off.services.accessTokens.verify(s.accessToken)).ok).toBe(true);
      expect((off.services.accessTokens as unknown as { cache: unknown }).cache).toBeUndefined();
    } finally {
      await off.close();
    }
  });
});
