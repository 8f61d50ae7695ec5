import type { Metrics } from '../../observability/metrics.js';
import type { ResponseObserver } from './types.js';

/**
 * Requests and latency by method, route pattern and status. The labelled series are looked up once
 * per combination and kept (route patterns keep the set small), instead of hashing labels per request.
 */
export function requestMetricsObserver(metrics: Metrics): ResponseObserver {
  const series = new Map<string, { count(): void; observe(seconds: number): void }>();
  return {
    name: 'metrics',
    observe(request, reply) {
      const route = request.routeOptions.url ?? 'unmatched';
      const status = reply.statusCode;
      const key = `${request.method} ${status} ${route}`;
      let s = series.get(key);
      if (!s) {
        const counter = metrics.httpRequests.labels(request.method, route, String(status));
        const histogram = metrics.httpDuration.labels(request.method, route, String(status));
        s = { count: () => counter.inc(), observe: (seconds) => histogram.observe(seconds) };
        series.set(key, s);
      }
      s.count();
      s.observe(reply.elapsedTime / 1000);
    },
  };
}
