import { createHash, hash, randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import type { Role } from '../rbac/roles.js';
import type { SigningKeys } from './signing-keys.js';

/** The claims API.md promises on every access token. */
export interface AccessClaims {
  iss: string;
  aud: string;
  sub: string; // account id
  wallet: string;
  role: Role;
  sid: string; // session id
  jti: string;
  iat: number;
  exp: number;
  auth_time: number;
  /**
   * The session's absolute end (epoch seconds, rounded down), on every token issued for a session
   * with one. No request is accepted with the token from then on, whatever the clock tolerance:
   * `exp` is capped at it too, but the tolerance would otherwise stretch a capped `exp` past it.
   */
  session_exp?: number;
}

export interface AccessTokenOptions {
  issuer: string;
  audience: string;
  ttlSec: number;
  clockToleranceSec: number;
  /**
   * Verified tokens kept in memory (0 or absent: none). Entries are keyed by the SHA-256 of the
   * whole token, so a changed byte misses; they last exactly as long as the full check accepts the
   * token (`acceptedUntil`) and while its key may still verify. Revocation is not cached here: the authenticate stage checks it on every request.
   */
  cacheSize?: number;
}

interface CachedToken {
  claims: AccessClaims;
  kid: string;
  /** Epoch ms from which the token is refused (see acceptedUntil). */
  until: number;
}

const TYP = 'at+jwt';

/**
 * RS256 access tokens (RFC 9068 `typ: at+jwt`, `kid` in the header). Verification pins the
 * algorithm and type, checks issuer, audience and expiry with bounded clock tolerance, and needs no
 * database: revocation is checked separately against shared state by the authenticate stage.
 */
export class AccessTokens {
  private readonly cache: Map<string, CachedToken> | undefined;

  constructor(
    private readonly keys: SigningKeys,
    private readonly options: AccessTokenOptions,
    private readonly clock: Clock,
  ) {
    this.cache = options.cacheSize ? new Map() : undefined;
  }

  /**
   * A token for the session, for the configured lifetime but never past `notAfter` (epoch ms: the
   * session's absolute end), so that a refresh just before that end does not outlive it.
   */
  async issue(input: { accountId: string; wallet: string; role: Role; sessionId: string; authTime: number; notAfter?: number }): Promise<{ token: string; claims: AccessClaims }> {
    const iat = Math.floor(this.clock.now() / 1000);
    const claims: AccessClaims = {
      iss: this.options.issuer,
      aud: this.options.audience,
      sub: input.accountId,
      wallet: input.wallet,
      role: input.role,
      sid: input.sessionId,
      jti: randomUUID(),
      iat,
      exp: input.notAfter === undefined ? iat + this.options.ttlSec : Math.max(iat, Math.min(iat + this.options.ttlSec, Math.floor(input.notAfter / 1000))),
      auth_time: input.authTime,
      ...(input.notAfter === undefined ? {} : { session_exp: Math.floor(input.notAfter / 1000) }),
    };
    const { kid, privateKey } = this.keys.active();
    const { iss, aud, sub, jti, iat: _iat, exp, ...rest } = claims;
    const token = await new SignJWT(rest)
      .setProtectedHeader({ alg: 'RS256', typ: TYP, kid })
      .setIssuer(iss)
      .setAudience(aud)
      .setSubject(sub)
      .setJti(jti)
      .setIssuedAt(_iat)
      .setExpirationTime(exp)
      .sign(privateKey);
    return { token, claims };
  }

  /**
   * The claims of a token this process verified before, while it is unexpired and its key still
   * verifies (no signature check, no promise: the request hot path), else undefined: then `verify`.
   */
  verifiedBefore(token: string): AccessClaims | undefined {
    return this.cache ? this.cached(hash('sha256', token, 'base64')) : undefined;
  }

  /**
   * The instant (epoch ms) from which a verified token is refused: its `exp` plus the clock
   * tolerance (jose's rule, `exp > floor(now / 1000) - tolerance`, in milliseconds), but never later
   * than its session's end (`session_exp`), to which no tolerance applies. The cache and the full
   * check both use it, so they agree to the millisecond.
   */
  private acceptedUntil(claims: AccessClaims): number {
    const byExp = (claims.exp + this.options.clockToleranceSec) * 1000;
    return claims.session_exp === undefined ? byExp : Math.min(byExp, claims.session_exp * 1000);
  }

  private cached(cacheKey: string): AccessClaims | undefined {
    const now = this.clock.now();
    const hit = this.cache?.get(cacheKey);
    if (hit && now < hit.until && this.keys.verificationKey(hit.kid, now)) return hit.claims;
    if (hit) this.cache!.delete(cacheKey);
    return undefined;
  }

  async verify(token: string): Promise<Result<AccessClaims, 'invalid_token' | 'token_expired'>> {
    const cacheKey = this.cache ? hash('sha256', token, 'base64') : undefined;
    const known = cacheKey === undefined ? undefined : this.cached(cacheKey);
    if (known) return ok(known);
    const now = this.clock.now();
    const verified = await this.verifySignedToken(token, now);
    if (verified.ok && this.cache && cacheKey) {
      this.cache.set(cacheKey, { claims: verified.value, kid: verified.kid, until: this.acceptedUntil(verified.value) });
      // Bounded: the oldest entry goes first (Map keeps insertion order).
      if (this.cache.size > this.options.cacheSize!) this.cache.delete(this.cache.keys().next().value!);
    }
    return verified.ok ? ok(verified.value) : verified;
  }

  private async verifySignedToken(token: string, now: number): Promise<{ ok: true; value: AccessClaims; kid: string } | { ok: false; code: 'invalid_token' | 'token_expired'; detail: string }> {
    const keyFor = async (header: JWTHeaderParameters, _input: FlattenedJWSInput) => {
      const key = typeof header.kid === 'string' && header.kid ? await this.keys.currentVerificationKey(header.kid, now) : undefined;
      if (!key) throw new joseErrors.JWKSNoMatchingKey();
      return key;
    };
    try {
      const { payload, protectedHeader } = await jwtVerify(token, keyFor, {
        algorithms: ['RS256'],
        typ: TYP,
        issuer: this.options.issuer,
        audience: this.options.audience,
        requiredClaims: ['exp', 'iat', 'jti', 'sub', 'sid', 'wallet', 'role', 'auth_time'],
        clockTolerance: this.options.clockToleranceSec,
        currentDate: new Date(now),
        maxTokenAge: this.options.ttlSec + this.options.clockToleranceSec,
      });
      if (typeof payload.sid !== 'string' || typeof payload.wallet !== 'string' || typeof payload.role !== 'string' || typeof payload.auth_time !== 'number') {
        return fail('invalid_token', 'The token is missing required claims');
      }
      if (payload.session_exp !== undefined && !Number.isSafeInteger(payload.session_exp)) return fail('invalid_token', 'The token has a malformed session end');
      const claims = Object.freeze(payload) as unknown as AccessClaims;
      // jose has checked `exp` with the tolerance; the session's end has none.
      if (now >= this.acceptedUntil(claims)) return fail('token_expired', 'The session has ended; sign in again');
      return { ok: true, value: claims, kid: protectedHeader.kid! };
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) return fail('token_expired', 'The access token has expired; refresh it');
      return fail('invalid_token', 'The access token is not valid');
    }
  }
}
