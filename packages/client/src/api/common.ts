/** A decimal amount or price as a string (`"0.0125"`): amounts never travel as JSON numbers. */
export type Decimal = string;
/** Epoch milliseconds. */
export type EpochMs = number;

export type Chain = 'ethereum' | 'solana';
export type Role = 'trader' | 'developer' | 'admin' | 'auditor';

/** API-key scopes (API.md). Read-only ones first, then trading, then webhooks. */
export const SCOPES = [
  'market:read',
  'account:read',
  'orders:read',
  'portfolio:read',
  'orders:write',
  'positions:write',
  'withdrawals:write',
  'tokens:write',
  'webhooks:write',
] as const;
export type Scope = (typeof SCOPES)[number];

/** Throws a TypeError when an amount is not a decimal string: a JSON number would lose precision. */
export function assertDecimal(name: string, value: unknown, optional = false): void {
  if (value === undefined && optional) return;
  if (typeof value !== 'string' || !/^-?\d+(\.\d+)?$/.test(value)) {
    throw new TypeError(`${name} must be a decimal string such as "0.0125" (got ${typeof value === 'string' ? JSON.stringify(value) : typeof value})`);
  }
}
