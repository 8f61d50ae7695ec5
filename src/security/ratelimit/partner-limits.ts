import type { Logger } from 'pino';
import { lockStillAdmin, NO_LONGER_ADMIN } from '../../accounts/accounts.js';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import type { Store } from '../../store/db.js';
import type { SharedState } from '../../state/port.js';
import type { AuditLog } from '../../audit/audit-log.js';
import { effectiveLimits, RATE_CATEGORIES, type CategoryLimits, type LimitOverrides } from './policies.js';

export const LIMITS_CHANNEL = 'ratelimit:limits';

export interface PartnerLimitsRecord {
  accountId: string;
  overrides: LimitOverrides;
  limits: CategoryLimits;
  updatedAt: number | null;
  updatedBy: string | null;
}

interface Cached {
  overrides: LimitOverrides | undefined;
  /** The defaults merged with `overrides`. */
  limits: CategoryLimits;
  loadedAt: number;
}

/**
 * Partner limits: per-account overrides of the category limits, kept in the store and cached in
 * every process. A change is published on shared state so every process drops its cached copy at
 * once; a short time-to-live bounds staleness if a message is missed (subscriber reconnecting).
 */
export class PartnerLimits {
  private readonly cache = new Map<string, Cached>();
  private readonly loading = new Map<string, Promise<LimitOverrides | undefined>>();
  /** Bumped by every invalidation: a load that raced with one is not cached. */
  private generation = 0;
  private unsubscribe: (() => Promise<void>) | undefined;
  /** Resolves once this process listens for changes (or gave up: it then relies on the TTL). */
  readonly ready: Promise<void>;

  constructor(
    private readonly deps: { store: Store; state: SharedState; clock: Clock; log: Logger; ttlMs?: number; maxEntries?: number; audit?: AuditLog },
  ) {
    this.ready = deps.state
      .subscribe(LIMITS_CHANNEL, (accountId) => this.invalidate(accountId))
      .then(
        (off) => {
          this.unsubscribe = off;
        },
        (err) => deps.log.warn({ err }, 'partner limits: cannot subscribe to changes; relying on cache expiry'),
      );
  }

  /**
   * A copy younger than the TTL. One loaded "in the future" (the clock stepped back since) has an
   * unknown age: not fresh, or a change whose message was missed would wait out the step too.
   */
  private fresh(hit: Cached, now: number): boolean {
    return now >= hit.loadedAt && now - hit.loadedAt < (this.deps.ttlMs ?? 30_000);
  }

  private invalidate(accountId: string): void {
    this.generation++;
    this.cache.delete(accountId);
  }

  /** The limits in force for an account (defaults merged with its overrides). */
  async limitsFor(accountId: string): Promise<CategoryLimits> {
    return this.cachedLimitsFor(accountId) ?? effectiveLimits(await this.overridesFor(accountId));
  }

  /** The limits in force when this process holds a fresh copy (no I/O, the request hot path), else undefined. */
  cachedLimitsFor(accountId: string): CategoryLimits | undefined {
    const hit = this.cache.get(accountId);
    return hit && this.fresh(hit, this.deps.clock.now()) ? hit.limits : undefined;
  }

  async overridesFor(accountId: string): Promise<LimitOverrides | undefined> {
    const now = this.deps.clock.now();
    const hit = this.cache.get(accountId);
    if (hit && this.fresh(hit, now)) return hit.overrides;
    const inFlight = this.loading.get(accountId);
    if (inFlight) return inFlight;
    const generation = this.generation;
    const load = this.read(accountId)
      .then((record) => {
        const overrides = record?.overrides;
        if (generation === this.generation) this.put(accountId, { overrides, limits: Object.freeze(effectiveLimits(overrides)), loadedAt: now });
        return overrides;
      })
      .catch((err) => {
        // The store is down: serve the last known value, else defaults, rather than fail the request.
        this.deps.log.warn({ err, accountId }, 'partner limits: store unavailable, using cached or default limits');
        return hit?.overrides;
      })
      .finally(() => this.loading.delete(accountId));
    this.loading.set(accountId, load);
    return load;
  }

  private put(accountId: string, entry: Cached): void {
    if (this.cache.size >= (this.deps.maxEntries ?? 50_000)) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(accountId, entry);
  }

  /** The stored record (uncached), or undefined when the account has no overrides. */
  async read(accountId: string): Promise<PartnerLimitsRecord | undefined> {
    const row = await this.deps.store.db.selectFrom('rate_limit_overrides').selectAll().where('account_id', '=', accountId).executeTakeFirst();
    if (!row) return undefined;
    const overrides: LimitOverrides = {};
    for (const c of RATE_CATEGORIES) if (row[c] !== null) overrides[c] = Number(row[c]);
    return { accountId, overrides, limits: effectiveLimits(overrides), updatedAt: Number(row.updated_at), updatedBy: row.updated_by };
  }

  /**
   * Replaces an account's overrides (an empty object restores the defaults) and tells every
   * process. Publishing is best effort: if shared state is down, other processes converge when
   * their cached copy expires.
   */
  async set(accountId: string, overrides: LimitOverrides, by: string, sessionId?: string): Promise<PartnerLimitsRecord> {
    const r = await this.write(accountId, overrides, by, sessionId, false);
    if (!r.ok) throw new Error(r.detail); // not reached: only an admin's change is refused
    return r.value;
  }

  /**
   * As set, by the admin `by` (an account id), who must still be an admin as committed: a demotion
   * committed after the request's role check refuses the change (forbidden_role), nothing written.
   */
  async setByAdmin(accountId: string, overrides: LimitOverrides, by: string, sessionId?: string): Promise<Result<PartnerLimitsRecord, 'forbidden_role'>> {
    return this.write(accountId, overrides, by, sessionId, true);
  }

  private async write(accountId: string, overrides: LimitOverrides, by: string, sessionId: string | undefined, byAdmin: boolean): Promise<Result<PartnerLimitsRecord, 'forbidden_role'>> {
    const now = this.deps.clock.now();
    const present = RATE_CATEGORIES.filter((c) => overrides[c] !== undefined);
    // The change and its audit record commit together (admin actions are audited in their transaction).
    const written = await this.deps.store.transaction(async (trx) => {
      // The admin's row and the account's, locked in id order as a role change locks them.
      if (byAdmin && !(await lockStillAdmin(this.deps.store, trx, by, [accountId]))) return false;
      if (present.length === 0) {
        await trx.deleteFrom('rate_limit_overrides').where('account_id', '=', accountId).execute();
      } else {
        const row = {
          account_id: accountId,
          market: overrides.market ?? null,
          trading: overrides.trading ?? null,
          account: overrides.account ?? null,
          tokens: overrides.tokens ?? null,
          updated_at: now,
          updated_by: by,
        };
        const { account_id: _id, ...update } = row;
        await trx.insertInto('rate_limit_overrides').values(row).onConflict((oc) => oc.column('account_id').doUpdateSet(update)).execute();
      }
      const limits: Record<string, number | null> = {};
      for (const c of RATE_CATEGORIES) limits[c] = overrides[c] ?? null;
      await this.deps.audit?.recordIn(trx, { type: 'admin.limits.changed', accountId, actorId: by, details: { limits, ...(sessionId !== undefined ? { via: 'session', sessionId } : {}) } });
      return true;
    });
    if (!written) return fail('forbidden_role', NO_LONGER_ADMIN);
    this.invalidate(accountId);
    try {
      await this.deps.state.publish(LIMITS_CHANNEL, accountId);
    } catch (err) {
      this.deps.log.warn({ err, accountId }, 'partner limits: change not published; other processes apply it when their cache expires');
    }
    const clean: LimitOverrides = {};
    for (const c of present) clean[c] = overrides[c]!;
    return ok({ accountId, overrides: clean, limits: effectiveLimits(clean), updatedAt: present.length ? now : null, updatedBy: present.length ? by : null });
  }

  async close(): Promise<void> {
    // Not awaiting `ready`: with Redis down it may never settle (closing the state ends it).
    await this.unsubscribe?.().catch(() => {});
  }
}
