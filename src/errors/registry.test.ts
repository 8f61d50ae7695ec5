import { describe, expect, it } from 'vitest';
import { ApiError, fail, unwrap } from './registry.js';

function thrown(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('did not throw');
}

describe('unwrap', () => {
  it('puts extra.retryAfter (whole seconds) in a Retry-After header', () => {
    const e = thrown(() => unwrap(fail('service_unavailable', 'restarting', { retryAfter: 1 })));
    expect(e.headers).toEqual({ 'Retry-After': '1' });
    expect(e.extra).toEqual({ retryAfter: 1 });
  });

  it('never writes a Retry-After that is not delay-seconds (1*DIGIT)', () => {
    for (const retryAfter of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1', 1e21, 2 ** 53]) {
      const e = thrown(() => unwrap(fail('service_unavailable', 'restarting', { retryAfter })));
      const header = e.headers?.['Retry-After'];
      if (header !== undefined) expect(header).toMatch(/^\d+$/);
    }
  });
});
