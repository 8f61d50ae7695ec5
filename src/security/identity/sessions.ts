import { createHash, randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { lockStillAdmin, NO_LONGER_ADMIN } from '../../accounts/accounts.js';
import type { Chain } from '../../accounts/wallets.js';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import type { Store } from '../../store/db.js';
import type { AccountsTable, Database, SessionsTable } from '../../store/schema.js';
import type { SharedState } from '../../state/port.js';
import type { SecurityEvents } from '../events/index.js';
import { networkPrefix } from './network-prefix.js';
import { sessionStateKeys } from './revocation.js';

/** Where a request came from, as sessions and security events record it. */
export interface ClientContext {
  ip: string;
  userAgent: string | undefined;
  requestId: string;
}

export interface SessionView {
  id: string;
  chain: Chain;
  createdAt: number;
  lastUsedAt: number;
  /** The client's /24 (IPv4) or /48 (IPv6) network at sign-in. */
  ip: string;
  userAgent: string;
  /** When the session ends at the latest (its refresh tokens' absolute expiry). */
  expiresAt: number;
}

export type SessionRow = SessionsTable;
/** The account a rotated session belongs to, as read in the rotation's transaction. */
export type AccountRow = Pick<AccountsTable, 'id' | 'wallet' | 'chain' | 'role' | 'created_at'>;
export type RevokedBy = 'logout' | 'user' | 'admin' | 'reuse' | 'limit';

/** Who revoked a session on request: the acting account and the session it used. */
export interface SessionActor {
  accountId: string;
  sessionId: string;
}

/** The fields of a session.revoked event naming who asked for it (nothing for system revocations). */
function actorFields(actor: SessionActor | undefined): { actorId?: string; bySessionId?: string } {
  return actor ? { actorId: actor.accountId, bySessionId: actor.sessionId } : {};
}

export interface SessionOptions {
  refreshAbsoluteMs: number;
  refreshIdleMs: number;
  /** How long an access token can outlive the moment its session is revoked (lifetime + tolerance). */
  accessTokenLifetimeMs: number;
}

/** `mdr_` + 256 random bits, base64url. Only its SHA-256 is ever stored. */
const REFRESH_TOKEN = /^mdr_[A-Za-z0-9_-]{43}$/;
const ACTIVITY_INTERVAL_MS = 60_000;
/** How much longer than a token's lifetime a revocation entry lives (see publishRevocation). */
export const REVOCATION_MARGIN_MS = 60_000;
const USER_AGENT_MAX = 256;
/**
 * Live sessions an account keeps: every sign-in opens one, so a sign-in beyond this ends the
 * oldest (as revoked by `limit`) rather than letting them pile up past what the list shows.
 */
export const MAX_LIVE_SESSIONS = 100;

export function newRefreshToken(): string {
  return `mdr_${randomBytes(32).toString('base64url')}`;
}

export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function cleanUserAgent(ua: string | undefined): string {
  // Shown back to the person in the sessions list: printable characters only, bounded.
  return (ua ?? '').replace(/[^\x20-\x7e]/g, '').slice(0, USER_AGENT_MAX);
}

function toView(row: SessionRow): SessionView {
  return {
    id: row.id,
    chain: row.chain,
    createdAt: Number(row.created_at),
    lastUsedAt: Number(row.last_used_at),
    ip: row.ip,
    userAgent: row.user_agent,
    expiresAt: Number(row.refresh_expires_at),
  };
}

/**
 * Sign-in sessions and their rotating refresh tokens.
 *
 * Rotation is one conditional write (`spent_at` set only where it is still null, on a live
 * session), so two refreshes racing with the same token cannot both win on SQLite or PostgreSQL:
 * the loser finds the token spent and is treated as reuse, which revokes the session.
 * Revocation is written to the database (durable, read back by the security sync) and to the
 * shared-state revocation set that the authenticate stage consults on every request.
 */
export class Sessions {
  /** Sessions touched since the last flush, and when each was last written (at most once a minute). */
  private readonly pendingActivity = new Map<string, number>();
  private readonly lastActivityWrite = new Map<string, number>();
  /**
   * Sessions whose once-a-minute claim (`sess:touched:`) this process took but whose write failed:
   * by claim time. The claim stays in shared state, so without this the retry would find it taken
   * and skip the write it was meant to make.
   */
  private readonly unwrittenClaims = new Map<string, number>();
  private activityTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: { store: Store; state: SharedState; clock: Clock; events: SecurityEvents; options: SessionOptions; onError: (err: unknown) => void },
  ) {}

  /** Opens a session after a successful sign-in; returns it with its first refresh token. */
  async start(input: { accountId: string; chain: Chain; authTimeMs: number; client: ClientContext }): Promise<{ session: SessionRow; refreshToken: string }> {
    const now = this.deps.clock.now();
    const { refreshAbsoluteMs, refreshIdleMs } = this.deps.options;
    const session: SessionRow = {
      id: newId('ses', now),
      account_id: input.accountId,
      chain: input.chain,
      auth_time: input.authTimeMs,
      created_at: now,
      last_used_at: now,
      ip: networkPrefix(input.client.ip),
      user_agent: cleanUserAgent(input.client.userAgent),
      refresh_expires_at: now + refreshAbsoluteMs,
      idle_expires_at: now + Math.min(refreshIdleMs, refreshAbsoluteMs),
      revoked_at: null,
      revoked_reason: null,
    };
    const refreshToken = newRefreshToken();
    // The cap is applied in the session's own transaction: a sign-in whose trim fails commits
    // nothing (its 5xx leaves no session behind), and one that commits leaves at most
    // MAX_LIVE_SESSIONS live.
    const ended = await this.deps.store.transaction(async (trx) => {
      // Under the account's lock (PostgreSQL; SQLite transactions run one at a time): two sign-ins
      // at once would otherwise each count the live sessions without the other's and both keep it.
      if (this.deps.store.dialect === 'postgres') await trx.selectFrom('accounts').select('id').where('id', '=', input.accountId).forUpdate().execute();
      await trx.insertInto('sessions').values(session).execute();
      await trx.insertInto('refresh_tokens').values({ token_hash: hashRefreshToken(refreshToken), session_id: session.id, created_at: now, spent_at: null }).execute();
      return this.endOldest(trx, input.accountId, now);
    });
    // Audited once committed, all of them before any is published: a shared-state failure fails the
    // sign-in (503; nobody holds the new session's tokens), but the sessions have ended (the
    // security sync publishes them) and no later call would record them.
    for (const id of ended) {
      this.deps.events.emit({ type: 'session.revoked', sessionId: id, by: 'limit', at: now, accountId: input.accountId, ip: input.client.ip, userAgent: input.client.userAgent, requestId: input.client.requestId });
    }
    let failure: { err: unknown } | undefined;
    for (const id of ended) {
      try {
        await this.publishRevocation(id, now);
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
    return { session, refreshToken };
  }

  /**
   * Spends a refresh token and returns its session with the next one. A token already spent
   * revokes the whole session (`refresh_token_reused`): either it was stolen, or the thief used
   * it first.
   */
  async rotate(
    refreshToken: string,
    client: ClientContext,
  ): Promise<Result<{ session: SessionRow; refreshToken: string; account: AccountRow | undefined }, 'invalid_token' | 'token_expired' | 'token_revoked' | 'refresh_token_reused'>> {
    // A refused refresh token is a failed authentication like a refused access token: reported
    // (with the account once its session is known), so guessing is counted and stale use recorded.
    const refused = <C extends 'invalid_token' | 'token_expired' | 'token_revoked'>(code: C, detail: string, accountId?: string) => {
      this.deps.events.emit({ type: 'auth.failed', code, at: this.deps.clock.now(), accountId, ip: client.ip, userAgent: client.userAgent, requestId: client.requestId });
      return fail(code, detail);
    };
    if (!REFRESH_TOKEN.test(refreshToken)) return refused('invalid_token', 'The refresh token is not valid');
    const now = this.deps.clock.now();
    const hash = hashRefreshToken(refreshToken);
    const next = newRefreshToken();
    const { refreshIdleMs } = this.deps.options;

    const outcome = await this.deps.store.transaction(async (trx) => {
      // The write comes first: it takes the row (PostgreSQL) or the database (SQLite) write lock,
      // so a concurrent rotation of the same token waits and then matches nothing.
      const spent = await trx
        .updateTable('refresh_tokens')
        .set({ spent_at: now })
        .where('token_hash', '=', hash)
        .where('spent_at', 'is', null)
        .where('session_id', 'in', (qb) =>
          qb.selectFrom('sessions').select('id').where('revoked_at', 'is', null).where('refresh_expires_at', '>', now).where('idle_expires_at', '>', now),
        )
        .executeTakeFirst();
      const row = await trx
        .selectFrom('refresh_tokens')
        .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
        .selectAll('sessions')
        .select('refresh_tokens.spent_at')
        .where('refresh_tokens.token_hash', '=', hash)
        .executeTakeFirst();
      if (!row) return { kind: 'unknown' as const };
      const { spent_at: spentAt, ...session } = row;
      if (Number(spent.numUpdatedRows) === 1) {
        const idle = Math.min(now + refreshIdleMs, Number(session.refresh_expires_at));
        await trx.insertInto('refresh_tokens').values({ token_hash: hashRefreshToken(next), session_id: session.id, created_at: now, spent_at: null }).execute();
        await trx.updateTable('sessions').set({ idle_expires_at: idle, last_used_at: now }).where('id', '=', session.id).execute();
        // The account the new tokens are for, read before the old token's spending commits: a read
        // failing after it (a database blip) would leave the client without its new token, and its
        // retry with the old one would count as reuse and end the session.
        const account = await trx.selectFrom('accounts').select(['id', 'wallet', 'chain', 'role', 'created_at']).where('id', '=', session.account_id).executeTakeFirst();
        return { kind: 'rotated' as const, session: { ...session, idle_expires_at: idle, last_used_at: now }, account };
      }
      if (spentAt !== null) {
        // The time of the revocation is read now, not at the start: this transaction may have
        // waited for the one that spent the token, whose new access token is signed after it
        // commits. The revocation must outlive that token, so it may not be dated before it.
        const revokedAt = Math.max(now, this.deps.clock.now());
        const revoked = await trx
          .updateTable('sessions')
          .set({ revoked_at: revokedAt, revoked_reason: 'refresh_token_reused' })
          .where('id', '=', session.id)
          .where('revoked_at', 'is', null)
          .executeTakeFirst();
        return { kind: 'reused' as const, session, revokedNow: Number(revoked.numUpdatedRows) === 1, revokedAt };
      }
      if (session.revoked_at !== null) return { kind: 'revoked' as const, accountId: session.account_id };
      return { kind: 'expired' as const, accountId: session.account_id };
    });

    switch (outcome.kind) {
      case 'rotated':
        return ok({ session: outcome.session, refreshToken: next, account: outcome.account });
      case 'reused': {
        const { session, revokedNow, revokedAt } = outcome;
        // A session that had already ended (logout, an earlier reuse, an admin) keeps the
        // revocation it had: this presentation is recorded as reuse, not as a second revocation.
        await this.publishRevocation(session.id, revokedNow ? revokedAt : Number(session.revoked_at ?? now));
        const base = { at: now, accountId: session.account_id, ip: client.ip, userAgent: client.userAgent, requestId: client.requestId };
        this.deps.events.emit({ type: 'refresh_token_reused', sessionId: session.id, ...base });
        if (revokedNow) this.deps.events.emit({ type: 'session.revoked', sessionId: session.id, by: 'reuse', ...base });
        return fail('refresh_token_reused', 'This refresh token was already used; the session is revoked. Sign in again');
      }
      case 'revoked':
        return refused('token_revoked', 'This session was revoked; sign in again', outcome.accountId);
      case 'expired':
        return refused('token_expired', 'The session has expired; sign in again', outcome.accountId);
      case 'unknown':
        return refused('invalid_token', 'The refresh token is not valid');
    }
  }

  /**
   * Revokes, in `trx`, the account's oldest live sessions beyond MAX_LIVE_SESSIONS (newest kept;
   * sessions of the same millisecond in id order, which is the order they were made); returns them.
   */
  private async endOldest(trx: Transaction<Database>, accountId: string, now: number): Promise<string[]> {
    const beyond = await liveNewestFirst(trx, accountId, now)
      .select('id')
      .limit(1000)
      .offset(MAX_LIVE_SESSIONS)
      .execute();
    if (beyond.length === 0) return [];
    const revoked = await trx
      .updateTable('sessions')
      .set({ revoked_at: now, revoked_reason: 'limit' })
      .where('id', 'in', beyond.map((r) => r.id))
      .where('revoked_at', 'is', null)
      .returning('id')
      .execute();
    return revoked.map((r) => r.id).sort();
  }

  /**
   * Revokes one session of an account; not_found when the account has no such session. `actor` is
   * the account and session that asked (a person ending one of their sessions from another): the
   * audit record names them (actorId, bySessionId), while its `sessionId` stays the session ended.
   */
  async revoke(accountId: string, sessionId: string, by: RevokedBy, client: ClientContext, actor?: SessionActor): Promise<Result<void, 'not_found'>> {
    const now = this.deps.clock.now();
    const row = await this.deps.store.db.selectFrom('sessions').select(['id', 'revoked_at']).where('id', '=', sessionId).where('account_id', '=', accountId).executeTakeFirst();
    if (!row) return fail('not_found', 'No such session');
    if (row.revoked_at !== null) {
      // Already revoked, but writing it to shared state may have failed (the caller heard 503 and
      // retries): write it again, or other processes would accept the session's tokens meanwhile.
      await this.publishRevocation(sessionId, Number(row.revoked_at));
      return ok(undefined);
    }
    const updated = await this.deps.store.db.updateTable('sessions').set({ revoked_at: now, revoked_reason: by }).where('id', '=', sessionId).where('revoked_at', 'is', null).executeTakeFirst();
    // Recorded once the revocation is committed, before it is published: a failed publish answers
    // 503 and the retry finds the session revoked already, so recording after it would never happen.
    if (Number(updated.numUpdatedRows) === 1) {
      this.deps.events.emit({ type: 'session.revoked', sessionId, by, ...actorFields(actor), at: now, accountId, ip: client.ip, userAgent: client.userAgent, requestId: client.requestId });
    }
    await this.publishRevocation(sessionId, now);
    return ok(undefined);
  }

  /**
   * Revokes every session of an account whose tokens may still be in use; returns how many. `actor`
   * is the admin's account and session: each record names them (actorId, adminId, bySessionId).
   * With `byAdmin`, that admin must still be one as committed (read under the account rows' lock in
   * the revocation's transaction, lockStillAdmin): a demotion committed after the request's role
   * check refuses it (forbidden_role), no session revoked.
   */
  async revokeAll(accountId: string, by: RevokedBy, client: ClientContext, actor?: SessionActor, options: { byAdmin?: boolean } = {}): Promise<Result<number, 'forbidden_role'>> {
    const now = this.deps.clock.now();
    const horizon = now - this.deps.options.accessTokenLifetimeMs;
    const revoked = await this.deps.store.transaction(async (trx) => {
      if (options.byAdmin && (actor === undefined || !(await lockStillAdmin(this.deps.store, trx, actor.accountId, [accountId])))) return undefined;
      return trx
        .updateTable('sessions')
        .set({ revoked_at: now, revoked_reason: by })
        .where('account_id', '=', accountId)
        .where('revoked_at', 'is', null)
        .where('refresh_expires_at', '>', horizon)
        .where('idle_expires_at', '>', horizon)
        .returning('id')
        .execute();
    });
    if (revoked === undefined) return fail('forbidden_role', NO_LONGER_ADMIN);
    for (const { id } of revoked) {
      this.deps.events.emit({ type: 'session.revoked', sessionId: id, by, ...(by === 'admin' && actor ? { adminId: actor.accountId } : {}), ...actorFields(actor), at: now, accountId, ip: client.ip, userAgent: client.userAgent, requestId: client.requestId });
    }
    // Every session of the account revoked recently enough for its tokens to live goes to shared
    // state, also those an earlier call revoked but could not write there (it answered 503 and the
    // caller retries): otherwise other processes would accept their tokens meanwhile.
    const recent = await this.deps.store.db.selectFrom('sessions').select(['id', 'revoked_at']).where('account_id', '=', accountId).where('revoked_at', '>', horizon).execute();
    for (const r of recent) await this.publishRevocation(r.id, Number(r.revoked_at));
    return ok(revoked.length);
  }

  /** The account's live sessions, newest first. */
  async list(accountId: string): Promise<SessionView[]> {
    const now = this.deps.clock.now();
    const rows = await liveNewestFirst(this.deps.store.db, accountId, now).selectAll().limit(200).execute();
    return rows.map(toView);
  }

  /**
   * Records that a session was used. Cheap and synchronous on the request path: the database is
   * written later, in a batch, at most once a minute per session (and, through shared state, at
   * most once a minute per session across all processes).
   */
  touch(sessionId: string): void {
    const now = this.deps.clock.now();
    const last = this.lastActivityWrite.get(sessionId);
    if (last !== undefined && now - last < ACTIVITY_INTERVAL_MS) return;
    this.lastActivityWrite.set(sessionId, now);
    this.pendingActivity.set(sessionId, now);
    if (!this.activityTimer) {
      this.activityTimer = setTimeout(() => {
        this.activityTimer = undefined;
        this.flushActivity().catch(this.deps.onError);
      }, 1_000);
      this.activityTimer.unref();
    }
  }

  /** Writes pending last-used times (called by the timer, at shutdown, and by tests). */
  async flushActivity(): Promise<void> {
    const now = this.deps.clock.now();
    const batch = [...this.pendingActivity];
    this.pendingActivity.clear();
    for (const [sid, at] of this.lastActivityWrite) if (now - at >= ACTIVITY_INTERVAL_MS) this.lastActivityWrite.delete(sid);
    for (let i = 0; i < batch.length; i++) {
      const [sessionId, at] = batch[i]!;
      try {
        const held = this.unwrittenClaims.get(sessionId);
        this.unwrittenClaims.delete(sessionId);
        let claimedAt: number;
        if (held !== undefined && now - held < ACTIVITY_INTERVAL_MS) claimedAt = held;
        else if (await this.deps.state.setIfAbsent(`sess:touched:${sessionId}`, '1', ACTIVITY_INTERVAL_MS)) claimedAt = now;
        else continue;
        this.unwrittenClaims.set(sessionId, claimedAt);
        await this.deps.store.db.updateTable('sessions').set({ last_used_at: at }).where('id', '=', sessionId).where('last_used_at', '<', at).execute();
        this.unwrittenClaims.delete(sessionId);
      } catch (err) {
        // Shared state or the store failed: what is not written yet waits for the next flush
        // (unless a newer use of the session is already waiting).
        for (const [sid, t] of batch.slice(i)) if ((this.pendingActivity.get(sid) ?? 0) < t) this.pendingActivity.set(sid, t);
        throw err;
      }
    }
  }

  /** Stops the activity timer and writes what is pending. */
  async close(): Promise<void> {
    if (this.activityTimer) clearTimeout(this.activityTimer);
    this.activityTimer = undefined;
    await this.flushActivity();
  }

  /**
   * Puts the session into the shared revocation set for as long as any of its tokens can live. A
   * token issued by a refresh that committed while this revocation waited for its write was issued
   * after `revokedAt` (taken before the wait), but no later than now: the entry lives a token's
   * lifetime from the later of the two, and REVOCATION_MARGIN_MS more for a token signed a moment
   * after its refresh committed. Revocations older than a token's lifetime are left out.
   */
  async publishRevocation(sessionId: string, revokedAt: number): Promise<void> {
    const now = this.deps.clock.now();
    const lifetime = this.deps.options.accessTokenLifetimeMs;
    if (revokedAt + lifetime + REVOCATION_MARGIN_MS <= now) return;
    const ttl = Math.max(revokedAt, now) + lifetime + REVOCATION_MARGIN_MS - now;
    await this.deps.state.set(sessionStateKeys(sessionId, '').revoked, String(revokedAt), ttl);
  }

  /** Deletes sessions (and their refresh tokens) that ended long enough ago to matter to no token. */
  async prune(retentionMs: number): Promise<number> {
    const cutoff = this.deps.clock.now() - retentionMs;
    const r = await this.deps.store.db
      .deleteFrom('sessions')
      .where((eb) => eb.or([eb('refresh_expires_at', '<', cutoff), eb('idle_expires_at', '<', cutoff), eb('revoked_at', '<', cutoff)]))
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}

/**
 * The account's live sessions (not revoked, neither expiry reached), newest first; sessions of the
 * same millisecond by id, the order they were made. What the list shows and the cap counts.
 */
function liveNewestFirst(db: Kysely<Database>, accountId: string, now: number) {
  return db
    .selectFrom('sessions')
    .where('account_id', '=', accountId)
    .where('revoked_at', 'is', null)
    .where('refresh_expires_at', '>', now)
    .where('idle_expires_at', '>', now)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc');
}
