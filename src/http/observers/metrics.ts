import { SeriesCache, type Metrics } from '../../observability/metrics.js';
import type { ResponseObserver } from './types.js';

/** Requests and latency by method, route pattern (never the raw URL) and status. */
export function requestMetricsObserver(metrics: Metrics): ResponseObserver {
  const requests = new SeriesCache(metrics.httpRequests);
  const durations = new SeriesCache(metrics.httpDuration);
  return {
    name: 'metrics',
    observe(request, reply) {
      const route = request.routeOptions.url ?? 'unmatched';
      const status = String(reply.statusCode);
      requests.get(request.method, route, status).inc();
      durations.get(request.method, route, status).observe(reply.elapsedTime / 1000);
    },
  };
}
