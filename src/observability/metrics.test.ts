import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
import { Metrics } from './metrics.js';

/** Cumulative bucket counts of one histogram series: `le` -> count. */
async function buckets(metrics: Metrics, route: string): Promise<Map<number, number>> {
  const text = await metrics.text();
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    const m = line.match(/^moondraft_http_request_duration_seconds_bucket\{(.*)\} (\S+)$/);
    if (!m || !m[1]!.includes(`route="${route}"`)) continue;
    const le = m[1]!.match(/le="([^"]+)"/)![1]!;
    out.set(le === '+Inf' ? Infinity : Number(le), Number(m[2]));
  }
  return out;
}

describe('HTTP latency histogram', () => {
  it('tells slow requests apart up to the request timeout (5 s, 25 s): they do not all land in +Inf', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const timeoutS = loadConfig({}).timeouts.requestMs / 1000;
    metrics.httpDuration.observe(['POST', '/five', '200'], 5);
    metrics.httpDuration.observe(['POST', '/twentyfive', '200'], 25);
    metrics.httpDuration.observe(['POST', '/timeout', '503'], timeoutS);
    const five = await buckets(metrics, '/five');
    const twentyFive = await buckets(metrics, '/twentyfive');
    const finite = [...five.keys()].filter((le) => Number.isFinite(le)).sort((a, b) => a - b);
    // A request that ran until the timeout still falls in a finite bucket.
    expect(finite[finite.length - 1]).toBeGreaterThanOrEqual(timeoutS);
    // Some finite bucket holds the 5 s request but not the 25 s one, and another holds the 25 s one.
    expect(finite.some((le) => five.get(le) === 1 && twentyFive.get(le) === 0)).toBe(true);
    expect(finite.some((le) => twentyFive.get(le) === 1)).toBe(true);
    const timeout = await buckets(metrics, '/timeout');
    expect(finite.some((le) => timeout.get(le) === 1)).toBe(true);
    // The series stay modest: every (method, route, status) costs one line per bucket.
    expect(finite.length).toBeLessThanOrEqual(16);
  });
});
