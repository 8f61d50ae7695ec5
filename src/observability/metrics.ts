import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { LabelledCounter, LabelledHistogram } from './labelled.js';

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
  /** Label values in order: method, route pattern, status. */
  readonly httpDuration = new LabelledHistogram({
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
