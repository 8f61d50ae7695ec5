/** One policy's state from `RateLimit` / `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-11). */
export interface RateLimitState {
  /** The policy name, e.g. `trading`. */
  policy: string;
  /** Requests left in the window (`r`). */
  remaining?: number;
  /** Seconds until the quota resets (`t`). */
  resetSeconds?: number;
  /** The quota (`q`, from RateLimit-Policy). */
  quota?: number;
  /** The window in seconds (`w`, from RateLimit-Policy). */
  windowSeconds?: number;
}

/** Parses both headers (structured-field lists of `"name";param=value` items) into one entry per policy. */
export function parseRateLimit(rateLimit: string | null, policy: string | null): RateLimitState[] {
  const byName = new Map<string, RateLimitState>();
  const read = (header: string | null, keys: Record<string, keyof RateLimitState>) => {
    if (!header) return;
    for (const item of header.split(',')) {
      const [name, ...params] = item.trim().split(';');
      const policyName = name?.trim().replace(/^"(.*)"$/, '$1');
      if (!policyName) continue;
      const entry = byName.get(policyName) ?? { policy: policyName };
      for (const param of params) {
        const [k, v] = param.trim().split('=');
        const field = k ? keys[k] : undefined;
        const n = Number(v);
        if (field && Number.isFinite(n)) (entry as unknown as Record<string, number>)[field] = n;
      }
      byName.set(policyName, entry);
    }
  };
  read(policy, { q: 'quota', w: 'windowSeconds' });
  read(rateLimit, { r: 'remaining', t: 'resetSeconds' });
  return [...byName.values()];
}
