import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LabelledCounter, LabelledHistogram } from './labelled.js';

/** The hot-path metrics must read exactly as prom-client's own would for the same observations. */
describe('labelled counters and histograms', () => {
  const buckets = [0.001, 0.01, 0.1, 1];
  const observations: Array<[string, string, string, number]> = [
    ['GET', '/api/v1/account', '200', 0.0004],
    ['GET', '/api/v1/account', '200', 0.001],
    ['GET', '/api/v1/account', '200', 0.05],
    ['GET', '/api/v1/account', '429', 0.002],
    ['POST', '/api/v1/trading/orders', '201', 3],
  ];

  it('expose the same Prometheus text as prom-client for the same observations', async () => {
    const ours = new Registry();
    const reference = new Registry();
    const labelNames = ['method', 'route', 'status'] as const;
    const c = new LabelledCounter({ name: 'x_requests_total', help: 'Requests', labelNames, registers: [ours] });
    const h = new LabelledHistogram({ name: 'x_duration_seconds', help: 'Latency', labelNames, buckets, registers: [ours] });
    const rc = new Counter({ name: 'x_requests_total', help: 'Requests', labelNames, registers: [reference] });
    const rh = new Histogram({ name: 'x_duration_seconds', help: 'Latency', labelNames, buckets, registers: [reference] });
    for (const [method, route, status, seconds] of observations) {
      c.inc([method, route, status]);
      h.observe([method, route, status], seconds);
      rc.inc({ method, route, status });
      rh.observe({ method, route, status }, seconds);
    }
    expect(await ours.metrics()).toBe(await reference.metrics());
    expect(c.value(['GET', '/api/v1/account', '200'])).toBe(3);
    expect(c.value(['GET', '/nowhere', '200'])).toBe(0);
  });

  it('counts by any amount, and resets with the registry', async () => {
    const registry = new Registry();
    const c = new LabelledCounter({ name: 'y_total', help: 'Y', labelNames: ['category', 'outcome'] as const, registers: [registry] });
    c.inc(['account', 'allowed'], 5);
    c.inc(['account', 'allowed']);
    expect(await registry.metrics()).toContain('y_total{category="account",outcome="allowed"} 6');
    registry.resetMetrics();
    expect(c.value(['account', 'allowed'])).toBe(0);
  });
});
