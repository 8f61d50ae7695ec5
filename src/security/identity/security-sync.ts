import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import type { Store } from '../../store/db.js';
import type { SharedState } from '../../state/port.js';
import { publishRole } from './revocation.js';
import type { Sessions } from './sessions.js';

/** Rows written by another process may carry a slightly older timestamp than our last run. */
const OVERLAP_MS = 60_000;
const PRUNE_EVERY_MS = 3_600_000;
/** Ended sessions are kept this long (spent refresh tokens still read as reuse meanwhile). */
const SESSION_RETENTION_MS = 7 * 86_400_000;
/**
 * Each process's sign that shared state still holds what its passes wrote. Gone (Redis restarted
 * empty, failed over, flushed) means revocations and role changes older than the overlap are gone
 * too, and the next pass must look back a whole token lifetime again, as at start-up.
 */
const MARKER_PREFIX = 'security:sync:';

/**
 * Carries durable security decisions from the database into shared state: sessions revoked and
 * roles changed within the last access-token lifetime. It runs at start-up (in-process state is
 * empty after a restart) and every few seconds off the request path (the offline CLI, `moondraft
 * role`, writes only the database). Each run is two indexed range queries over recent rows.
 */
export class SecuritySync {
  private lastRunAt: number | undefined;
  private lastPruneAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly marker = `${MARKER_PREFIX}${randomBytes(8).toString('hex')}`;
  /** What this process's last pass wrote to its marker (unique per pass), and how many passes wrote one. */
  private markerValue: string | undefined;
  private passes = 0;
  private readonly lostListeners: ((at: number, intactAt: number) => void | Promise<void>)[] = [];
  private readonly passListeners: ((since: number) => Promise<void>)[] = [];

  constructor(
    private readonly deps: { store: Store; state: SharedState; clock: Clock; sessions: Sessions; log: Logger; windowMs: number; intervalMs: number },
  ) {}

  /**
   * One pass; the first looks back a whole token lifetime, later ones only since the previous pass,
   * unless shared state lost what earlier passes wrote: then a whole token lifetime again.
   */
  async runOnce(): Promise<{ revocations: number; roles: number }> {
    const { store, state, clock, windowMs } = this.deps;
    const now = clock.now();
    // Checked and set before anything is published: a loss during this pass is seen by the next.
    // The marker must hold the value the last pass wrote, not merely exist: Redis restarted from
    // an older snapshot (or a lagging replica promoted) has a marker of an earlier pass, and lost
    // everything written since, which the overlap alone would not bring back.
    if (this.lastRunAt !== undefined && (await state.get(this.marker)) !== this.markerValue) {
      const intactAt = this.lastRunAt;
      this.lastRunAt = undefined;
      for (const listener of this.lostListeners) await listener(now, intactAt);
    }
    const markerValue = `${now}:${++this.passes}`;
    await state.set(this.marker, markerValue, windowMs);
    this.markerValue = markerValue;
    // A clock stepped back since the last pass (NTP) stamps new rows before that pass's time: look
    // back from now, not from the last pass, or they would never be read.
    const since = this.lastRunAt === undefined ? now - windowMs : Math.max(now - windowMs, Math.min(now, this.lastRunAt) - OVERLAP_MS);

    const revoked = await store.db.selectFrom('sessions').select(['id', 'revoked_at']).where('revoked_at', '>=', since).execute();
    for (const row of revoked) await this.deps.sessions.publishRevocation(row.id, Number(row.revoked_at));

    const readRoles = () => store.db.selectFrom('accounts').select(['id', 'role', 'updated_at']).where('updated_at', '>=', since).execute();
    // Each role as it is in force, under its row's share lock (see publishRole): a change that
    // commits meanwhile is written after this pass's write, never under it.
    const roles = await readRoles();
    for (const row of roles) await publishRole(store, state, row.id, (updatedAt) => updatedAt + windowMs - now);

    for (const listener of this.passListeners) await listener(since);

    this.lastRunAt = now;
    if (now - this.lastPruneAt >= PRUNE_EVERY_MS) {
      this.lastPruneAt = now;
      const pruned = await this.deps.sessions.prune(SESSION_RETENTION_MS);
      if (pruned > 0) this.deps.log.info({ pruned }, 'pruned ended sessions');
    }
    return { revocations: revoked.length, roles: roles.length };
  }

  /**
   * Calls `listener` with the pass's time whenever a pass finds that shared state lost what earlier
   * passes wrote: whatever else it held is gone too (the replay memory, which cannot be rebuilt).
   * `intactAt` is the previous pass's time, when it still held it: the loss came after.
   */
  onStateLost(listener: (at: number, intactAt: number) => void | Promise<void>): void {
    this.lostListeners.push(listener);
  }

  /**
   * Runs `listener` in every pass, after the sessions and roles, with the time from which that pass
   * publishes changes (the last pass less the overlap; a whole window at start-up and after a loss),
   * for other durable decisions to carry into shared state the same way (API key versions).
   */
  onPass(listener: (since: number) => Promise<void>): void {
    this.passListeners.push(listener);
  }

  /**
   * This process's marker, for the request path to read in the same round trip as the revocation
   * and role it checks (see `holds`).
   */
  get markerKey(): string {
    return this.marker;
  }

  /**
   * Whether what shared state answered together with `marker` (this process's marker, read in the
   * same atomic read) includes every revocation and role change this process's passes published:
   * the marker holds what the last pass wrote, and no pass is putting back what a loss took. When
   * not (Redis restarted empty, or from an older snapshot), a revoked session read there as
   * unrevoked and a demoted account read with the role its token carries, until the next pass
   * (seconds later) noticed: the caller awaits `restore()` and reads again.
   */
  holds(marker: string | null): boolean {
    return this.lastRunAt !== undefined && marker === this.markerValue;
  }

  /**
   * Runs a pass now (or joins the one under way), which notices a loss and puts revocations and
   * roles back. A pass that fails (the store unreachable) is logged; the caller finds `holds`
   * still false and refuses.
   */
  async restore(): Promise<void> {
    // A pass already under way may have checked the marker before the loss: one begun after it.
    await this.running;
    await this.tick();
  }

  /** Runs once now (start-up), then every interval; a failed pass is logged and retried next time. */
  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.deps.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.running) {
      await this.running; // a slow pass is never overlapped by the next
      return;
    }
    this.running = this.runOnce().catch((err) => this.deps.log.error({ err }, 'security sync failed'));
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
