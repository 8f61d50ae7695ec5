import type { AuditValue } from './events.js';

/**
 * Defence in depth for audit details: whatever a caller passes, a value under a secret-looking
 * name, or a value that looks like a credential (a JWT, an API key, a Bearer header, a PEM key),
 * is replaced by `[redacted]` before it is encrypted and stored. Strings are capped and structures
 * bounded, so a record stays small whatever it is given.
 */
export const REDACTED = '[redacted]';

const SECRET_NAME = /(secret|password|passphrase|private|mnemonic|seedphrase|authorization|cookie|signature|credential|token$|api[_-]?key$|^body$|^rawbody$|^query$|^url$|^rawurl$)/i;
/** Found anywhere in a string: a credential pasted into a user agent or a message is still one. */
const CREDENTIAL_VALUE = [
  /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/, // JWT / JWS
  /md_(test|live)_[A-Za-z0-9_-]+/, // Moondraft API key
  /mds_[1-9A-HJ-NP-Za-km-z]{20,}/, // Moondraft API-key secret (hmac)
  /mdr_[A-Za-z0-9_-]{20,}/, // Moondraft refresh token
  /^bearer\s/i,
  /\bbearer\s+[A-Za-z0-9._~+/=-]{16,}/i, // an Authorization header inside a longer string
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
];
const MAX_STRING = 512;
const MAX_ITEMS = 50;
const MAX_DEPTH = 5;

export function looksLikeCredential(value: string): boolean {
  return CREDENTIAL_VALUE.some((re) => re.test(value));
}

function clean(value: unknown, depth: number): AuditValue | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') {
    if (looksLikeCredential(value)) return REDACTED;
    return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
  }
  if (depth >= MAX_DEPTH) return '[truncated]';
  if (Array.isArray(value)) return value.slice(0, MAX_ITEMS).map((v) => clean(v, depth + 1) ?? null);
  if (typeof value === 'object') {
    const out: Record<string, AuditValue> = {};
    let n = 0;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (n++ >= MAX_ITEMS) break;
      if (SECRET_NAME.test(k)) {
        out[k] = REDACTED;
        continue;
      }
      const c = clean(v, depth + 1);
      if (c !== undefined) out[k] = c;
    }
    return out;
  }
  return null;
}

/** A JSON-safe copy of `details` with secrets redacted and sizes bounded. */
export function redactDetails(details: unknown): Record<string, AuditValue> {
  const c = clean(details ?? {}, 0);
  return c !== null && typeof c === 'object' && !Array.isArray(c) ? (c as Record<string, AuditValue>) : { value: c ?? null };
}
