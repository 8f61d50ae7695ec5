import type { Metrics } from '../../observability/metrics.js';
import type { ResponseObserver } from './types.js';

/** Requests and latency by method, route pattern (never the raw URL) and status. */
export function requestMetricsObserver(metrics: Metrics): ResponseObserver {
  return {
    name: 'metrics',
    observe(request, reply) {
      const labels = [request.method, request.routeOptions.url ?? 'unmatched', String(reply.statusCode)];
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    },
  };
}
