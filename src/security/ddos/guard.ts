import type { Logger } from 'pino';
import type { DdosConfig } from '../../config/index.js';
import type { Clock } from '../../lib/clock.js';
import { StateUnavailableError, type SharedState, type WindowDecision } from '../../state/port.js';
import type { SecurityEvents } from '../events/index.js';
import { canonicalAllowlistEntry } from '../network/allowlist.js';
import type { IpBlocks } from './blocks.js';
import { blockListOf, canonicalAddress, clientGroup, familyOf, type AddressMatcher } from './ip.js';

const GUESSING: ReadonlySet<string> = new Set(['invalid_token', 'invalid_api_key', 'invalid_signature', 'invalid_credentials']);

export interface DdosGuardDeps {
  state: SharedState;
  /** In-process counters while shared state is unavailable. */
  fallback: SharedState;
  blocks: IpBlocks;
  config: DdosConfig;
  clock: Clock;
  log: Logger;
  timeSource: 'state' | 'caller';
}

/**
 * Blocks client addresses that fail too much: too many failed authentications within a window,
 * or too many 4xx answers to unauthenticated requests in a second. Counted per address (per /64
 * on IPv6) in shared state, so failures spread over several processes add up. Authenticated
 * traffic is not counted here: a trading firm's many keys behind one address are not a crowd,
 * and their refusals are the rate limiter's business.
 */
/** The failure counter of one client group (an address, or an IPv6 /64) and kind of failure. */
function counterKey(group: string, kind: string): string {
  return `ddos:{${group}}:${kind}`;
}

export class DdosGuard {
  private readonly exempt: AddressMatcher;
  private unwatch: (() => void) | undefined;

  constructor(private readonly deps: DdosGuardDeps) {
    // Configured entries are read as the configuration checked them: an IPv4-mapped range written
    // as IPv6 (::ffff:10.0.0.0/104, as a proxy list may) is its IPv4 range, which block targets'
    // stricter parser would drop, leaving a trusted proxy unexempt (and blockable with all its clients).
    this.exempt = blockListOf(deps.config.exempt.map((entry) => canonicalAllowlistEntry(entry) ?? entry));
  }

  /**
   * Counts failed authentications reported as security events: every failed sign-in, and the
   * credential failures that guessing produces (a forged or garbled token, an unknown key, a wrong
   * signature). Expired or revoked credentials, a skewed clock or a replay are left out: they come
   * from a stale browser tab or one misconfigured bot, and blocking its address would block every
   * other client behind it.
   */
  watch(events: SecurityEvents): void {
    this.unwatch = events.subscribe((e) => {
      if (e.type === 'ip.unblocked') return this.forgive(e.target);
      if (!e.ip) return;
      if (e.type === 'signin.failed' || (e.type === 'auth.failed' && GUESSING.has(e.code))) return this.authFailure(e.ip);
    });
  }

  /**
   * An administrator lifted a block: the failures counted against that address (or /64) are
   * forgiven too, or its next mistake inside the window would block it again at once.
   */
  private async forgive(target: string): Promise<void> {
    const keys = [counterKey(target, 'auth'), counterKey(target, '4xx')];
    await Promise.all(keys.map((k) => this.deps.fallback.del(k)));
    try {
      await Promise.all(keys.map((k) => this.deps.state.del(k)));
    } catch (err) {
      if (!(err instanceof StateUnavailableError)) throw err;
    }
  }

  /** Exempt addresses are never blocked automatically nor held to the unauthenticated ceilings. */
  isExempt(ip: string): boolean {
    const address = canonicalAddress(ip);
    return address !== undefined && this.exempt.check(address, familyOf(address));
  }

  authFailure(ip: string): Promise<void> {
    const { authFailures, authFailureWindowMs } = this.deps.config;
    return this.count('auth', ip, authFailures, authFailureWindowMs, 'auth_failures');
  }

  /** A 4xx answer (other than 429) to a request that carried no valid credentials. */
  clientError(ip: string): Promise<void> {
    return this.count('4xx', ip, this.deps.config.clientErrorsPerSec, 1000, 'client_errors');
  }

  private async count(kind: string, ip: string, threshold: number, windowMs: number, reason: string): Promise<void> {
    const address = canonicalAddress(ip);
    if (!address || this.exempt.check(address, familyOf(address)) || this.deps.blocks.check(address)) return;
    const group = clientGroup(address);
    const key = counterKey(group, kind);
    const now = this.deps.timeSource === 'caller' ? this.deps.clock.now() : undefined;
    // The window admits threshold-1 failures; the threshold-th is refused, and that blocks.
    let d: WindowDecision;
    try {
      d = await this.deps.state.slidingWindowHit(key, threshold - 1, windowMs, now);
    } catch (err) {
      if (!(err instanceof StateUnavailableError)) throw err;
      d = await this.deps.fallback.slidingWindowHit(key, threshold - 1, windowMs, now);
    }
    if (!d.allowed) await this.deps.blocks.autoBlock(group, reason, this.deps.config.blockMs);
  }

  close(): void {
    this.unwatch?.();
  }
}
