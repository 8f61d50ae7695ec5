import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The labelled series of one metric, looked up once per combination of label values and kept:
 * prom-client hashes a labels object on every call, which the request hot path should not pay.
 * Values are given in the metric's labelNames order. Only for label sets known to stay small
 * (route patterns, categories, outcomes), never for client-chosen values.
 */
export class SeriesCache<S> {
  private readonly children = new Map<string, S>();

  constructor(private readonly metric: { labels(...values: string[]): S }) {}

  get(...values: string[]): S {
    const key = values.length === 1 ? values[0]! : values.join('\u0000');
    let child = this.children.get(key);
    if (child === undefined) {
      child = this.metric.labels(...values);
      this.children.set(key, child);
    }
    return child;
  }
}

/** One Prometheus registry per server instance (tests start several in one process). */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'moondraft_http_requests_total',
    help: 'HTTP requests by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'moondraft_http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
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

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
