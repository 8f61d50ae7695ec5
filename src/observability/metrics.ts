import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { LabelledCounter, LabelledHistogram } from './labelled.js';

/**
 * How long one rendering of the registry answers every scrape. /metrics is public and outside the
 * rate limits (for Prometheus); rendering takes milliseconds and hundreds of kilobytes once the
 * route and status labels have filled in, so an anonymous flood of scrapes would otherwise cost a
 * core. Prometheus scrapes every few seconds: a second's reuse changes nothing for it.
 */
export const METRICS_REUSE_MS = 1_000;

/** One Prometheus registry per server instance (tests start several in one process). */
export class Metrics {
  readonly registry = new Registry();
  /** Label values in order: method, route pattern, status. */
  readonly httpRequests = new LabelledCounter({
    name: 'moondraft_http_requests_total',
    help: 'HTTP requests by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  /**
   * Label values in order: method, route pattern, status.
   *
   * Buckets from 1 ms to 30 s: most answers take well under a millisecond to a few ms, durable
   * orders under load tens of ms to seconds, and a request may run until the request timeout
   * (MOONDRAFT_REQUEST_TIMEOUT_MS, 30 s by default). With a top bucket of 2.5 s every slow request
   * fell in +Inf, so a p99 of 5 s could not be told from one of 25 s. Each bucket is one series
   * per (method, route, status), so they stay few: roughly ×2.5 steps, no sub-millisecond
   * resolution (the lowest bucket answers "fast" well enough).
   */
  readonly httpDuration = new LabelledHistogram({
    name: 'moondraft_http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30],
    registers: [this.registry],
  });
  readonly securityEvents = new Counter({
    name: 'moondraft_security_events_total',
    help: 'Security events by type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  private lastScrape: { at: number; text: Promise<string> } | undefined;

  /** The registry as Prometheus text, rendered now. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** What a scrape at `now` (epoch ms) gets: one rendering serves every scrape for METRICS_REUSE_MS. */
  scrape(now: number): Promise<string> {
    const last = this.lastScrape;
    if (last && now >= last.at && now - last.at < METRICS_REUSE_MS) return last.text;
    const text = this.text();
    const entry = { at: now, text };
    this.lastScrape = entry;
    // A failed rendering is not reused: the next scrape tries again.
    text.catch(() => {
      if (this.lastScrape === entry) this.lastScrape = undefined;
    });
    return text;
  }
}
