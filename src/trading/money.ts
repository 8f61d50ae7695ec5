import { fail, ok, type Result } from '../errors/registry.js';

/** Largest amount the API accepts, in minor units: 2^63 − 1 (fits a signed 64-bit integer everywhere). */
export const MAX_MINOR = (1n << 63n) - 1n;

/** Longest decimal string we even look at (40 characters covers 2^63 with 18 decimals and then some). */
export const MAX_DECIMAL_LENGTH = 40;

/** Pattern of a decimal amount at the edge; published in the OpenAPI schemas. */
export const DECIMAL_PATTERN = '^(0|[1-9][0-9]*)(\\.[0-9]+)?$';
const DECIMAL = new RegExp(DECIMAL_PATTERN);

export interface ParseOptions {
  /** Refuse zero (quantities, prices). Default true. */
  positive?: boolean;
}

/**
 * Parses a decimal string into integer minor units with `decimals` places, exactly.
 *
 * Refuses anything that is not a plain decimal (signs, exponents, spaces, leading zeros such as
 * `007`, a bare `.5` or `5.`), more fractional digits than the asset has (even trailing zeros: the
 * client must say what it means at the asset's precision), zero unless allowed, and values beyond
 * 2^63 − 1 minor units. `what` names the field in the refusal.
 *
 * @example parseAmount('12.5', 6, 'quantity') // ok(12_500_000n)
 */
export function parseAmount(input: unknown, decimals: number, what: string, options: ParseOptions = {}): Result<bigint, 'validation_failed'> {
  if (typeof input !== 'string') return fail('validation_failed', `${what} must be a decimal string such as "1.25"`);
  if (input.length === 0 || input.length > MAX_DECIMAL_LENGTH || !DECIMAL.test(input)) {
    return fail('validation_failed', `${what} must be a plain decimal string such as "1.25" (digits, one optional point, no sign or exponent)`);
  }
  const dot = input.indexOf('.');
  const whole = dot === -1 ? input : input.slice(0, dot);
  const frac = dot === -1 ? '' : input.slice(dot + 1);
  if (frac.length > decimals) {
    return fail('validation_failed', `${what} has ${frac.length} decimal places; at most ${decimals} are allowed`);
  }
  const minor = BigInt(whole) * 10n ** BigInt(decimals) + (frac.length ? BigInt(frac.padEnd(decimals, '0')) : 0n);
  if (minor > MAX_MINOR) return fail('validation_failed', `${what} is too large`);
  if ((options.positive ?? true) && minor === 0n) return fail('validation_failed', `${what} must be greater than zero`);
  return ok(minor);
}

/**
 * Formats minor units as a canonical decimal string: no exponent, no trailing fractional zeros,
 * a leading `-` for negatives (PnL).
 *
 * @example formatAmount(12_500_000n, 6) // '12.5'
 */
export function formatAmount(minor: bigint, decimals: number): string {
  const negative = minor < 0n;
  const abs = negative ? -minor : minor;
  if (decimals === 0) return `${negative ? '-' : ''}${abs}`;
  const scale = 10n ** BigInt(decimals);
  const whole = abs / scale;
  const frac = (abs % scale).toString().padStart(decimals, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

/** 10^decimals as a bigint (cached: it sits on the matching hot path). */
const POW10: bigint[] = Array.from({ length: 40 }, (_, i) => 10n ** BigInt(i));
export function pow10(decimals: number): bigint {
  return POW10[decimals] ?? 10n ** BigInt(decimals);
}

/** Reads a money column (text on SQLite, numeric on PostgreSQL) as bigint. */
export function readMinor(value: string | number | bigint | null | undefined): bigint {
  if (value === null || value === undefined) return 0n;
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error('money column read as an unsafe number');
    return BigInt(value);
  }
  return BigInt(value);
}
