import type { Metrics } from '../../observability/metrics.js';
import { elapsedMs } from './timing.js';
import type { ResponseObserver } from './types.js';

/**
 * The methods the API answers, each its own label value. Node's parser accepts some thirty more
 * (PROPFIND, MKCOL, LINK, SOURCE...), all of which a client can send to any path: each would add
 * its own series (for every status it meets) held for the life of the process and rendered on
 * every scrape. They are counted together as `other`.
 */
const METHOD_LABELS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The method label: the method itself when the API answers it, `other` otherwise. */
export function methodLabel(method: string): string {
  return METHOD_LABELS.has(method) ? method : 'other';
}

/** Requests and latency by method, route pattern (never the raw URL) and status. */
export function requestMetricsObserver(metrics: Metrics): ResponseObserver {
  return {
    name: 'metrics',
    observe(request, reply) {
      const labels = [methodLabel(request.method), request.routeOptions.url ?? 'unmatched', String(reply.statusCode)];
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, elapsedMs(reply) / 1000);
    },
  };
}
