import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatAmount, MAX_MINOR, parseAmount } from './money.js';

describe('parseAmount', () => {
  it('parses exactly into minor units', () => {
    expect(parseAmount('12.5', 6, 'q')).toEqual({ ok: true, value: 12_500_000n });
    expect(parseAmount('0.000001', 6, 'q')).toEqual({ ok: true, value: 1n });
    expect(parseAmount('7', 0, 'q')).toEqual({ ok: true, value: 7n });
    expect(parseAmount('0', 2, 'q', { positive: false })).toEqual({ ok: true, value: 0n });
    expect(parseAmount('9223372036854.775807', 6, 'q')).toEqual({ ok: true, value: MAX_MINOR });
  });

  it.each([
    ['abc'], ['1e5'], ['-1'], ['+1'], [' 1'], ['1 '], ['1.'], ['.5'], ['01'], ['1,5'], ['0x1F'], ['١'], ['∞'], ['NaN'], [''], ['1.2.3'], ['1'.repeat(41)],
  ])('refuses %j', (s) => {
    expect(parseAmount(s, 6, 'q')).toMatchObject({ ok: false, code: 'validation_failed' });
  });

  it('refuses non-strings, zero, too many decimals and values beyond 2^63 − 1', () => {
    for (const v of [1, 1.5, null, undefined, {}, [], 10n]) expect(parseAmount(v, 6, 'q').ok).toBe(false);
    expect(parseAmount('0', 6, 'q')).toMatchObject({ ok: false, detail: 'q must be greater than zero' });
    expect(parseAmount('0.000', 6, 'q').ok).toBe(false);
    expect(parseAmount('1.0000001', 6, 'q')).toMatchObject({ ok: false, detail: 'q has 7 decimal places; at most 6 are allowed' });
    expect(parseAmount('1.10', 1, 'q').ok).toBe(false);
    expect(parseAmount('1.5', 0, 'q').ok).toBe(false);
    expect(parseAmount('9223372036854.775808', 6, 'q')).toMatchObject({ ok: false, detail: 'q is too large' });
    expect(parseAmount('9223372036854775808', 0, 'q').ok).toBe(false);
  });

  it('round-trips with formatAmount for every value and precision', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: MAX_MINOR }), fc.integer({ min: 0, max: 18 }), (minor, decimals) => {
        const text = formatAmount(minor, decimals);
        expect(text).toMatch(/^(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$/);
        expect(parseAmount(text, decimals, 'x')).toEqual({ ok: true, value: minor });
      }),
    );
  });
});

describe('formatAmount', () => {
  it('trims trailing zeros and signs negatives', () => {
    expect(formatAmount(1_500_000n, 6)).toBe('1.5');
    expect(formatAmount(1_000_000n, 6)).toBe('1');
    expect(formatAmount(1n, 6)).toBe('0.000001');
    expect(formatAmount(0n, 6)).toBe('0');
    expect(formatAmount(-16_000n, 6)).toBe('-0.016');
    expect(formatAmount(42n, 0)).toBe('42');
  });
});
