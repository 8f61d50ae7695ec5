/** The local time source. Inject one to test, or to run on a clock other than `Date.now`. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** One reading of `X-API-Server-Time` with the local send and receive times around it. */
export interface TimeSample {
  serverTime: number;
  sentAt: number;
  receivedAt: number;
}

export interface ClockEstimate {
  /** Server time minus local time, in ms (positive: the local clock is behind). */
  offsetMs: number;
  /** Half the round trip of the sample the offset comes from: the most the offset can be wrong by. */
  uncertaintyMs: number;
  /** Local time of that sample. */
  sampledAt: number;
}

/**
 * The last `X-API-Timestamp` signed with one API key. The server refuses a second request with the
 * same key, timestamp, method, path and body as a replay, so timestamps must strictly increase per
 * key, not per client: every client of this process using the key shares one sequence
 * (`sequenceFor`). Processes sharing a key cannot coordinate; give each its own key.
 */
export class TimestampSequence {
  private last = 0;

  /** `t`, or the next millisecond after the last one issued when `t` is not past it. */
  next(t: number): number {
    // A corrected estimate may move time back by a second or more: follow it rather than stay ahead.
    const behindLast = this.last - t;
    this.last = behindLast >= 0 && behindLast < 1000 ? this.last + 1 : t;
    return this.last;
  }
}

const sequences = new Map<string, TimestampSequence>();

/** The timestamp sequence of an API key, shared by every client of this process that uses it. */
export function sequenceFor(apiKey: string): TimestampSequence {
  let s = sequences.get(apiKey);
  if (!s) sequences.set(apiKey, (s = new TimestampSequence()));
  return s;
}

const SAMPLES_KEPT = 8;
/** Samples older than this no longer count: clocks drift, and servers are restarted. */
const SAMPLE_MAX_AGE_MS = 10 * 60_000;

/**
 * Estimates the server's clock from response headers, NTP-style: each sample assumes the server read
 * its clock at the midpoint of the round trip, so its error is at most half the round trip. Of the
 * recent samples the one with the shortest round trip wins (a slow handler stamps its response late).
 */
export class ServerClock {
  private samples: Array<TimeSample & { rtt: number }> = [];

  /** `sequence`: the API key's (see sequenceFor); a private one when there is no key. */
  constructor(
    private readonly local: Clock,
    private readonly sequence: TimestampSequence = new TimestampSequence(),
  ) {}

  record(sample: TimeSample): void {
    if (!Number.isSafeInteger(sample.serverTime) || sample.serverTime <= 0) return;
    // Received before it was sent: the local clock stepped back meanwhile, so the midpoint is off by
    // the step. Clamped to a zero round trip it would beat every honest sample for ten minutes.
    if (!(sample.receivedAt >= sample.sentAt)) return;
    const rtt = sample.receivedAt - sample.sentAt;
    this.samples.push({ ...sample, rtt });
    if (this.samples.length > SAMPLES_KEPT) this.samples.shift();
  }

  /** Forgets every sample (after a proven-wrong estimate the next response is the best evidence). */
  reset(): void {
    this.samples = [];
  }

  /** Whether at least one recent sample exists. */
  get synced(): boolean {
    return this.current() !== undefined;
  }

  estimate(): ClockEstimate | undefined {
    const best = this.current();
    if (!best) return undefined;
    return {
      offsetMs: best.serverTime - (best.sentAt + best.receivedAt) / 2,
      uncertaintyMs: best.rtt / 2,
      sampledAt: best.receivedAt,
    };
  }

  /** Server time now, as best known (local time when nothing is known yet). */
  now(): number {
    return Math.round(this.local.now() + (this.estimate()?.offsetMs ?? 0));
  }

  /**
   * The `X-API-Timestamp` for a request signed now. It leans back by the estimate's uncertainty
   * (at most 1 s) because the server refuses timestamps more than 1 s ahead but accepts a whole receive
   * window behind; and it strictly increases along the key's sequence (unless the estimate moves
   * back by a second or more), so two identical requests signed in the same millisecond, even by two
   * clients of the same key, never share a signature (the second would be refused as a replay).
   */
  nextTimestamp(): number {
    const estimate = this.estimate();
    const lean = estimate ? Math.min(estimate.uncertaintyMs, 1000) : 0;
    return this.sequence.next(Math.floor(this.local.now() + (estimate?.offsetMs ?? 0) - lean));
  }

  private current(): (TimeSample & { rtt: number }) | undefined {
    const now = this.local.now();
    let best: (TimeSample & { rtt: number }) | undefined;
    for (const s of this.samples) {
      if (Math.abs(now - s.receivedAt) > SAMPLE_MAX_AGE_MS) continue;
      if (!best || s.rtt <= best.rtt) best = s;
    }
    return best;
  }
}
