import { describe, expect, it } from 'vitest';
import { ConnectionCounter } from './connections.js';

describe('ConnectionCounter', () => {
  const exempt = new Set(['127.0.0.1']);
  const counter = () => new ConnectionCounter(2, (a) => exempt.has(a));

  it('admits up to the limit per address, refuses past it, and admits again once one closes', () => {
    const c = counter();
    expect(c.opened('203.0.113.5')).toEqual({ group: '203.0.113.5', refused: false });
    expect(c.opened('::ffff:203.0.113.5')).toEqual({ group: '203.0.113.5', refused: false }); // the same address, mapped
    expect(c.opened('203.0.113.5')).toEqual({ group: '203.0.113.5', refused: true });
    expect(c.count('203.0.113.5')).toBe(2); // a refused connection is not counted
    expect(c.opened('203.0.113.6').refused).toBe(false); // another address has its own count
    c.closed('203.0.113.5');
    expect(c.opened('203.0.113.5').refused).toBe(false);
  });

  it('counts IPv6 per /64, as the guard does', () => {
    const c = counter();
    expect(c.opened('2001:db8:1:2::1').group).toBe(c.opened('2001:db8:1:2:ffff::9').group);
    expect(c.opened('2001:db8:1:2::abcd').refused).toBe(true);
    expect(c.opened('2001:db8:1:3::1').refused).toBe(false);
  });

  it('does not count exempt or unreadable addresses, and forgets a group with nothing open', () => {
    const c = counter();
    for (let i = 0; i < 5; i++) expect(c.opened('127.0.0.1')).toEqual({ group: null, refused: false });
    expect(c.opened(undefined)).toEqual({ group: null, refused: false });
    const { group } = c.opened('198.51.100.1');
    c.closed(group!);
    c.closed(group!); // a second close changes nothing
    expect(c.groups).toBe(0);
    expect(c.count('198.51.100.1')).toBe(0);
  });
});
