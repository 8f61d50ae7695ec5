import { expect } from 'vitest';

/**
 * The burst check of the rate-limit issue, written once for any route, credentials and limit:
 * fire requests as fast as possible, then check from the accepted requests' times that no
 * 1-second interval admitted more than the limit and that the first second admitted at least
 * 95% of it.
 *
 * Times: `sentAt` is taken just before a request leaves, `serverTime` is the response's
 * X-API-Server-Time. The server decided somewhere in [sentAt, serverTime] (one machine, one clock;
 * with a manual clock both are the decision time exactly). So the check below only reports
 * violations that are certain whatever the latencies: limit+1 accepted requests whose brackets
 * all fit inside one window.
 */
export interface Sample {
  index: number;
  status: number;
  sentAt: number;
  serverTime: number;
}

export interface BurstOptions {
  count: number;
  /** Requests in flight at once (1 = strictly sequential). */
  concurrency: number;
  /** Sends request `i` (any route, any credentials, any process); resolves with status and headers. */
  send(i: number): Promise<{ status: number; headers: Record<string, unknown> }>;
  /** Client clock for `sentAt` (Date.now, or the manual clock). */
  now(): number;
}

export async function runBurst(o: BurstOptions): Promise<Sample[]> {
  const samples: Sample[] = [];
  let next = 0;
  async function worker() {
    while (next < o.count) {
      const index = next++;
      const sentAt = o.now();
      const res = await o.send(index);
      samples.push({ index, status: res.status, sentAt, serverTime: Number(res.headers['x-api-server-time']) });
    }
  }
  await Promise.all(Array.from({ length: Math.min(o.concurrency, o.count) }, worker));
  return samples.sort((a, b) => a.index - b.index);
}

/**
 * The largest set of accepted requests certainly decided within one half-open window: for each
 * accepted request i (earliest possible decision s_i), the requests j with s_j ≥ s_i whose latest
 * possible decision r_j is < s_i + window.
 */
export function maxCertainlyInOneWindow(accepted: readonly Sample[], windowMs: number): number {
  let best = 0;
  for (const a of accepted) {
    const inside = accepted.filter((b) => b.sentAt >= a.sentAt && b.serverTime < a.sentAt + windowMs).length;
    best = Math.max(best, inside);
  }
  return best;
}

export interface BurstVerdict {
  accepted: number;
  refused: number;
  /** Accepted requests certainly decided in the first window after the first request left. */
  acceptedInFirstWindow: number;
  maxInOneWindow: number;
  otherStatuses: number[];
}

export function judgeBurst(samples: readonly Sample[], windowMs = 1000): BurstVerdict {
  const accepted = samples.filter((s) => s.status >= 200 && s.status < 300);
  const start = Math.min(...samples.map((s) => s.sentAt));
  return {
    accepted: accepted.length,
    refused: samples.filter((s) => s.status === 429).length,
    acceptedInFirstWindow: accepted.filter((s) => s.serverTime < start + windowMs).length,
    maxInOneWindow: maxCertainlyInOneWindow(accepted, windowMs),
    otherStatuses: samples.filter((s) => s.status !== 429 && (s.status < 200 || s.status >= 300)).map((s) => s.status),
  };
}

/**
 * Runs the burst and asserts the two properties. Reusable for any route and credentials:
 * `send` chooses the route, the credentials and the process; `limit` is the category's limit.
 */
export async function expectBurstRespectsLimit(o: BurstOptions & { limit: number }): Promise<BurstVerdict> {
  const samples = await runBurst(o);
  const v = judgeBurst(samples);
  expect(v.otherStatuses).toEqual([]);
  expect(v.maxInOneWindow).toBeLessThanOrEqual(o.limit);
  expect(v.acceptedInFirstWindow).toBeGreaterThanOrEqual(Math.ceil(0.95 * o.limit));
  return v;
}
