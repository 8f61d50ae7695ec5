/**
 * draft-ietf-httpapi-ratelimit-headers-11 fields: `RateLimit-Policy: "trading";q=50;w=1` (the
 * quota) and `RateLimit: "trading";r=12;t=1` (remaining quota, seconds until more is available).
 */
export function rateLimitHeaders(name: string, limit: number, windowMs: number, remaining: number, nextQuotaMs: number): Record<string, string> {
  const id = JSON.stringify(name); // sf-string: policy names are [a-z] identifiers
  return {
    'RateLimit-Policy': `${id};q=${limit};w=${Math.max(1, Math.ceil(windowMs / 1000))}`,
    RateLimit: `${id};r=${Math.max(0, remaining)};t=${wholeSeconds(nextQuotaMs)}`,
  };
}

/** Whole seconds, rounded up (Retry-After and `t` never promise earlier than the server will admit). */
export function wholeSeconds(ms: number): number {
  return ms <= 0 ? 0 : Math.ceil(ms / 1000);
}
