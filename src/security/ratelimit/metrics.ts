import { Counter, type Registry } from 'prom-client';
import { LabelledCounter } from '../../observability/labelled.js';

/** Rate-limit counters, registered on the server's registry. */
export class RateLimitMetrics {
  /** Label values in order: category, outcome (one per request: the hot path). */
  readonly decisions: LabelledCounter<'category' | 'outcome'>;
  readonly fallback: Counter<'category'>;
  readonly suspensions: Counter<'category'>;

  constructor(registry: Registry) {
    this.decisions = new LabelledCounter({
      name: 'moondraft_ratelimit_decisions_total',
      help: 'Rate-limit decisions by category (market, trading, account, tokens, signin, public) and outcome (allowed, limited, suspended, unavailable)',
      labelNames: ['category', 'outcome'] as const,
      registers: [registry],
    });
    this.fallback = new Counter({
      name: 'moondraft_ratelimit_local_fallback_total',
      help: 'Decisions taken by the in-process limiter because shared state was unavailable, by category',
      labelNames: ['category'] as const,
      registers: [registry],
    });
    this.suspensions = new Counter({
      name: 'moondraft_ratelimit_suspensions_total',
      help: 'Clients newly suspended for abuse, by category',
      labelNames: ['category'] as const,
      registers: [registry],
    });
  }
}
