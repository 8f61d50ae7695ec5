import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import type { ApiKeyAuthenticator } from '../../services.js';
import type { SecurityEvents } from '../events/index.js';
import type { CountryLookup } from '../network/countries.js';
import type { Principal } from '../principal.js';
import { permissionRule, scopesAllowedForRole } from '../rbac/roles.js';
import { ReplayGuard } from '../replay/index.js';
import { canonicalMessage, checkTimestamp, RECV_WINDOW, type CanonicalParts } from '../signing/canonical.js';
import { describeSigned, messageDigest, verifyEd25519Message, verifyHmacMessage } from '../signing/verify.js';
import { environmentOfKey, KEY_PREFIX } from './format.js';
import { statusOf } from './records.js';
import type { ApiKeys, CredentialSlot, ResolvedKey } from './service.js';
import type { SharedState } from '../../state/port.js';

/** What the checks learn about one API-key request as they run. */
export interface KeyCheckContext {
  readonly request: FastifyRequest;
  readonly apiKey: string;
  readonly now: number;
  /** Whether the route accepts an unsigned key (market data). */
  readonly unsignedAllowed: boolean;
  /** Set by `key`. */
  key?: ResolvedKey;
  /** Set by `timestamp` when the request carries a signature; absent for an unsigned market-data request. */
  signed?: {
    parts: CanonicalParts;
    signature: string;
    /** canonicalMessage(parts), built once. */
    message: Uint8Array;
    /**
     * Set by `signature`: whose signature it is, the scope of the replay memory. An HMAC secret is
     * the key's own (made by the server), so the key id; an ed25519 public key is the client's and
     * may be registered on more than one key, so the public key itself.
     */
    signer?: string;
  };
}

/** One named check; it returns (go on) or throws an ApiError (refuse with that code). */
export interface KeyCheck {
  readonly name: 'key' | 'environment' | 'network' | 'timestamp' | 'signature' | 'replay';
  run(ctx: KeyCheckContext): void | Promise<void>;
}

export interface KeyCheckDeps {
  keys: ApiKeys;
  countries: CountryLookup;
  state: SharedState;
  env: 'sandbox' | 'live';
  /** See ReplayGuard: when an in-process replay memory began (undefined with a shared one). */
  replaySince?: number | undefined;
  /** The replay memory to use (made from `state` and `replaySince` when absent). */
  replay?: ReplayGuard | undefined;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function resolved(ctx: KeyCheckContext): ResolvedKey {
  if (!ctx.key) throw new Error('key check order broken: the key is not resolved yet');
  return ctx.key;
}

/** A signed request the replay memory cannot vouch for: signed before the memory began. */
function beforeMemory(now: number): ApiError {
  return new ApiError(
    'timestamp_out_of_window',
    'The request was signed before this server’s replay memory began (a restart of the server or of its shared state), which cannot tell whether it was already accepted; sign it again with a current timestamp',
    { extra: { serverTime: now } },
  );
}

/**
 * The API-key checks, cheapest first, in this fixed order (issue 4, item 7). After them the
 * authorize stage checks scope and role, then the rate limit, then the handler.
 */
export function apiKeyChecks(deps: KeyCheckDeps & { clock: Clock }): readonly KeyCheck[] {
  const replay = deps.replay ?? new ReplayGuard(deps.state, deps.replaySince);
  return [
    {
      // Known, and active: not revoked, not expired, not suspended.
      name: 'key',
      async run(ctx) {
        const claimed = environmentOfKey(ctx.apiKey);
        if (!claimed) throw new ApiError('invalid_api_key', 'X-API-Key is not an API key');
        const key = await deps.keys.resolve(ctx.apiKey);
        if (!key) {
          // A key of the other environment is unknown here by construction: say what it is.
          if (claimed !== deps.env) throw new ApiError('wrong_environment', `This server is ${deps.env}; use a ${KEY_PREFIX[deps.env]} key`);
          throw new ApiError('invalid_api_key', 'Unknown API key');
        }
        ctx.key = key;
        switch (statusOf(key.record, ctx.now)) {
          case 'revoked':
            throw new ApiError('key_revoked', 'This API key was revoked');
          case 'expired':
            throw new ApiError('key_expired', 'This API key has expired; regenerate it or create a new one');
          case 'suspended':
            throw new ApiError('key_suspended', 'This API key is suspended; contact support');
          case 'active':
            return;
        }
      },
    },
    {
      // md_test_ keys on sandbox servers, md_live_ keys on live ones (also for rows carried over
      // from another environment's database).
      name: 'environment',
      run(ctx) {
        const { record } = resolved(ctx);
        if (record.environment !== deps.env || environmentOfKey(ctx.apiKey) !== deps.env) {
          throw new ApiError('wrong_environment', `This server is ${deps.env}; this key belongs to ${record.environment}`);
        }
      },
    },
    {
      // The client address (socket peer, or X-Forwarded-For from a trusted proxy) against the
      // key's IP whitelist, then its country against allowedCountries (unknown country refused).
      name: 'network',
      run(ctx) {
        const { record } = resolved(ctx);
        const ip = ctx.request.clientIp;
        if (!deps.keys.allowlistFor(record).allows(ip)) throw new ApiError('ip_not_allowed', `${ip} is not on this key's IP whitelist`);
        if (record.allowedCountries.length > 0) {
          const country = deps.countries.countryOf(ip);
          // The detail never lists the key's countries: this check runs before the signature's, so
          // a bare key (leaked without its secret) would learn where to connect from.
          if (country === undefined) throw new ApiError('country_not_allowed', `The country of ${ip} is unknown; this key accepts only requests from its allowed countries`);
          if (!record.allowedCountries.includes(country)) throw new ApiError('country_not_allowed', `Requests from ${country} are not allowed for this key`);
        }
      },
    },
    {
      // Signed or not; if signed, the timestamp must be inside the receive window.
      name: 'timestamp',
      run(ctx) {
        const signature = header(ctx.request, 'x-api-signature');
        const timestamp = header(ctx.request, 'x-api-timestamp');
        if (signature === undefined) {
          // Refused before anything else is revealed: a bare key (say, leaked from a log) cannot
          // probe which scopes or routes it would have.
          if (!ctx.unsignedAllowed) throw new ApiError('signature_required', 'Sign this request (X-API-Timestamp and X-API-Signature)');
          return;
        }
        if (timestamp === undefined) throw new ApiError('validation_failed', 'X-API-Timestamp is required with X-API-Signature');
        const verdict = checkTimestamp(ctx.now, timestamp, header(ctx.request, 'x-api-recv-window'));
        if (!verdict.ok) {
          const extra = { extra: { serverTime: ctx.now } };
          switch (verdict.reason) {
            case 'malformed_timestamp':
              throw new ApiError('validation_failed', 'X-API-Timestamp must be epoch milliseconds');
            case 'malformed_window':
              throw new ApiError('validation_failed', 'X-API-Recv-Window must be a whole number of milliseconds from 1 to 60000');
            case 'too_old':
              throw new ApiError('timestamp_out_of_window', 'The timestamp is older than the receive window allows', extra);
            case 'too_far_ahead':
              throw new ApiError('timestamp_out_of_window', 'The timestamp is more than 1 s ahead of server time', extra);
          }
        }
        const parts: CanonicalParts = {
          timestamp,
          method: ctx.request.raw.method ?? ctx.request.method,
          pathWithQuery: ctx.request.raw.url ?? ctx.request.url,
          body: ctx.request.rawBody ?? new Uint8Array(0),
        };
        ctx.signed = { signature, parts, message: canonicalMessage(parts) };
      },
    },
    {
      // HMAC-SHA256 (timing-safe) or ed25519 over timestamp + METHOD + pathWithQuery + raw body,
      // with the current credential or, during a regeneration's grace period, the previous one.
      name: 'signature',
      run(ctx) {
        if (!ctx.signed) return;
        const { record } = resolved(ctx);
        const { parts, signature, message } = ctx.signed;
        const slots: CredentialSlot[] = record.prevValidUntil !== null && ctx.now < record.prevValidUntil ? ['current', 'previous'] : ['current'];
        const signer = slots.find((slot) => {
          if (record.type === 'hmac') {
            const secret = deps.keys.secretFor(record, slot);
            return secret !== undefined && verifyHmacMessage(secret, message, signature);
          }
          const publicKey = deps.keys.publicKeyFor(record, slot);
          return publicKey !== undefined && verifyEd25519Message(publicKey, message, signature);
        });
        if (signer !== undefined) {
          ctx.signed.signer = record.type === 'hmac' ? record.id : `ed25519:${signer === 'current' ? record.publicKey : record.prevPublicKey}`;
        } else {
          const signed = describeSigned(parts);
          throw new ApiError(
            'invalid_signature',
            `The signature does not match what the server signed: timestamp ${signed.timestamp}, method ${signed.method}, path ${signed.path}, body of ${signed.bodyLength} bytes with SHA-256 ${signed.bodySha256}`,
            { extra: { signed } },
          );
        }
      },
    },
    {
      // Each signed request is accepted once, on any process (shared state, set-if-absent), and
      // across a restart of the embedded server (whose memory started empty).
      name: 'replay',
      async run(ctx) {
        if (!ctx.signed) return;
        const { record } = resolved(ctx);
        const timestamp = Number(ctx.signed.parts.timestamp);
        if (!replay.covers(timestamp)) throw beforeMemory(ctx.now);
        // The window was checked at ctx.now, read before the key lookup; the memory keeps a request
        // for a fixed time from its acceptance, long enough for a copy checked and asked at once. A
        // copy whose checks stalled (a GC pause, an overloaded event loop) could reach the memory
        // after the original left it: past the largest window now, it is refused.
        const at = deps.clock.now();
        if (at - timestamp > RECV_WINDOW.maxMs) throw new ApiError('timestamp_out_of_window', 'The timestamp is older than the receive window allows', { extra: { serverTime: at } });
        // Scoped to the signer, not the key: a request signed with an ed25519 key pair registered
        // on two keys is accepted once, whichever of them it names.
        // `at`, read just now, not ctx.now: should this request be the first to meet a loss of the
        // memory, the marker it writes says since when the memory holds what it is asked. Requests
        // other processes had it record while this one's checks ran (after ctx.now) were lost too:
        // a marker dated ctx.now would vouch for them (signed up to 1 s ahead) and accept them again.
        const first = await replay.firstUse(ctx.signed.signer ?? record.id, messageDigest(ctx.signed.message), at);
        // The memory may have been found lost by this very request (its marker moved on).
        if (!replay.covers(Number(ctx.signed.parts.timestamp))) throw beforeMemory(ctx.now);
        if (!first) throw new ApiError('replayed_request', 'This signed request was already accepted; sign each request with a new timestamp');
      },
    },
  ];
}

/**
 * Runs the API-key checks in order and returns the principal: the key's scopes intersected with
 * what the owner's current role allows (so a demoted owner's keys lose trading at once).
 */
export class KeyAuthenticator implements ApiKeyAuthenticator {
  private readonly checks: readonly KeyCheck[];

  constructor(private readonly deps: KeyCheckDeps & { clock: Clock; events: SecurityEvents }) {
    this.checks = apiKeyChecks(deps);
  }

  async authenticate(request: FastifyRequest, apiKey: string): Promise<Principal> {
    const permission = request.routeOptions.config.permission;
    const rule = permission === undefined || permission === 'public' ? undefined : permissionRule(permission);
    const ctx: KeyCheckContext = {
      request,
      apiKey,
      now: this.deps.clock.now(),
      unsignedAllowed: rule?.unsignedKeyAllowed === true,
    };
    try {
      for (const check of this.checks) {
        const pending = check.run(ctx);
        if (pending) await pending;
      }
    } catch (err) {
      if (err instanceof ApiError) {
        this.deps.events.emit({ type: 'auth.failed', code: err.code, at: ctx.now, keyId: ctx.key?.record.id, accountId: ctx.key?.record.accountId, ip: request.clientIp, requestId: request.id });
      }
      throw err;
    }
    const { record, wallet, role } = resolved(ctx);
    const allowed = scopesAllowedForRole(role);
    await this.deps.keys.noteUse(record, ctx.signed !== undefined);
    return {
      kind: 'apiKey',
      accountId: record.accountId,
      wallet,
      role,
      keyId: record.id,
      scopes: record.scopes.filter((s) => allowed.includes(s)),
      signed: ctx.signed !== undefined,
    };
  }
}
