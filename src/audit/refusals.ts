import type { AuditEvent } from './events.js';

/**
 * Why a request is tallied instead of recorded one by one (see RefusalTally): a blocked address's
 * request, an anonymous 429, and what is refused before it is a request at all: HTTP that does not
 * parse (`malformed`), headers past the size limit, a request not in before its deadline, and a
 * connection past MOONDRAFT_DDOS_CONNECTIONS_PER_IP (closed unanswered).
 */
export type FloodRefusal = 'ip_blocked' | 'rate_limited' | 'malformed' | 'headers_too_large' | 'request_timeout' | 'too_many_connections';

/** The status each refusal was answered with; null: closed without an answer. */
export const REFUSAL_STATUS: Readonly<Record<FloodRefusal, number | null>> = {
  ip_blocked: 403,
  rate_limited: 429,
  malformed: 400,
  headers_too_large: 431,
  request_timeout: 408,
  too_many_connections: null,
};

/** Most distinct (network, refusal) pairs one window keeps apart; the rest are counted together. */
export const REFUSAL_TALLY_MAX_KEYS = 10_000;
/** How long flood refusals are counted before their tallies are written: the span one `access.refused` record covers. */
export const REFUSAL_WINDOW_MS = 60_000;
/** The network named by the tally of the pairs beyond REFUSAL_TALLY_MAX_KEYS. */
export const OTHER_NETWORKS = 'other';

interface Tally {
  network: string;
  refusal: FloodRefusal;
  count: number;
  from: number;
  to: number;
}

/**
 * The refusals a flood is made of (a blocked address's requests, an anonymous client's 429s),
 * counted per anonymized client network instead of one access entry each: they are decided
 * without any work, and one stored entry per request would let an address already refused write
 * to the audit trail, kept for years, at whatever rate it can send. Every such request is still
 * accounted for: each window (drain) becomes one `access.refused` event per network and refusal,
 * with the count and the first and last time. Memory is bounded: past REFUSAL_TALLY_MAX_KEYS
 * pairs in a window, further networks are counted under OTHER_NETWORKS.
 */
export class RefusalTally {
  private readonly tallies = new Map<string, Tally>();

  constructor(private readonly maxKeys = REFUSAL_TALLY_MAX_KEYS) {}

  add(network: string | null, refusal: FloodRefusal, at: number): void {
    let net = network ?? OTHER_NETWORKS;
    let key = `${net}|${refusal}`;
    let t = this.tallies.get(key);
    if (!t && this.tallies.size >= this.maxKeys) {
      net = OTHER_NETWORKS;
      key = `${net}|${refusal}`;
      t = this.tallies.get(key);
    }
    if (t) {
      t.count += 1;
      if (at < t.from) t.from = at;
      if (at > t.to) t.to = at;
      return;
    }
    this.tallies.set(key, { network: net, refusal, count: 1, from: at, to: at });
  }

  get size(): number {
    return this.tallies.size;
  }

  /**
   * The window's events (one per network and refusal), at most `max` of them, and a new window for
   * those: the tallies beyond `max` stay and go on counting (where the events could not be taken).
   */
  drain(max = Infinity): AuditEvent[] {
    const out: AuditEvent[] = [];
    for (const [key, t] of this.tallies) {
      if (out.length >= max) break;
      this.tallies.delete(key);
      out.push({
        type: 'access.refused',
        at: t.from,
        accountId: null,
        outcome: 'denied',
        ip: t.network === OTHER_NETWORKS ? null : t.network,
        details: { refusal: t.refusal, status: REFUSAL_STATUS[t.refusal], count: t.count, from: t.from, to: t.to, ...(t.network === OTHER_NETWORKS ? { network: OTHER_NETWORKS } : {}) },
      });
    }
    return out;
  }
}
