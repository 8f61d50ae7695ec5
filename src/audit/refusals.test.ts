import { describe, expect, it } from 'vitest';
import { OTHER_NETWORKS, RefusalTally } from './refusals.js';

describe('the flood-refusal tally', () => {
  it('counts per network and refusal, with the first and last time, and starts a new window when drained', () => {
    const t = new RefusalTally();
    t.add('198.51.100.0/24', 'ip_blocked', 1_000);
    t.add('198.51.100.0/24', 'ip_blocked', 3_000);
    t.add('198.51.100.0/24', 'ip_blocked', 2_000);
    t.add('198.51.100.0/24', 'rate_limited', 2_500);
    t.add('2001:db8:1::/48', 'rate_limited', 4_000);
    const events = t.drain();
    expect(events.map((e) => [e.ip, e.details])).toEqual([
      ['198.51.100.0/24', { refusal: 'ip_blocked', status: 403, count: 3, from: 1_000, to: 3_000 }],
      ['198.51.100.0/24', { refusal: 'rate_limited', status: 429, count: 1, from: 2_500, to: 2_500 }],
      ['2001:db8:1::/48', { refusal: 'rate_limited', status: 429, count: 1, from: 4_000, to: 4_000 }],
    ]);
    expect(events.every((e) => e.type === 'access.refused' && e.outcome === 'denied' && e.at === (e.details as { from: number }).from)).toBe(true);
    expect(t.size).toBe(0);
    expect(t.drain()).toEqual([]);
  });

  it('holds at most its bound of networks: the rest are counted together, none lost', () => {
    const t = new RefusalTally(3);
    for (let i = 0; i < 10; i++) t.add(`10.0.${i}.0/24`, 'ip_blocked', i);
    expect(t.size).toBe(4);
    const events = t.drain();
    expect(events.reduce((n, e) => n + (e.details as { count: number }).count, 0)).toBe(10);
    expect(events.at(-1)).toMatchObject({ ip: null, details: { network: OTHER_NETWORKS, count: 7 } });
  });
});
