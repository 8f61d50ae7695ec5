import type { Selectable } from 'kysely';
import type { ApiKeysTable } from '../../store/schema.js';
import { isScope, type Scope } from '../rbac/roles.js';
import type { KeyEnvironment } from './format.js';

export type KeyType = 'hmac' | 'ed25519';
export type KeyStatus = 'active' | 'suspended' | 'revoked' | 'expired';

/** An API key as the domain sees it (credentials still encrypted). */
export interface ApiKeyRecord {
  id: string;
  accountId: string;
  label: string;
  type: KeyType;
  environment: KeyEnvironment;
  keyHash: string;
  prefix: string;
  secretEnc: string | null;
  publicKey: string | null;
  prevSecretEnc: string | null;
  prevPublicKey: string | null;
  prevValidUntil: number | null;
  scopes: Scope[];
  ipWhitelist: string[];
  allowedCountries: string[];
  lifetimeDays: number;
  expiresAt: number;
  version: number;
  revokedAt: number | null;
  suspendedAt: number | null;
  suspendedReason: string | null;
  rotationRemindedAt: number | null;
  regeneratedAt: number | null;
  lastUsedAt: number | null;
  lastSignedAt: number | null;
  createdAt: number;
  updatedAt: number;
}

function stringList(json: string): string[] {
  const parsed: unknown = JSON.parse(json);
  return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === 'string') : [];
}

const num = (v: number | null): number | null => (v === null ? null : Number(v));

export function toRecord(row: Selectable<ApiKeysTable>): ApiKeyRecord {
  return {
    id: row.id,
    accountId: row.account_id,
    label: row.label,
    type: row.type,
    environment: row.environment,
    keyHash: row.key_hash,
    prefix: row.key_prefix,
    secretEnc: row.secret_enc,
    publicKey: row.public_key,
    prevSecretEnc: row.prev_secret_enc,
    prevPublicKey: row.prev_public_key,
    prevValidUntil: num(row.prev_valid_until),
    scopes: stringList(row.scopes).filter(isScope),
    ipWhitelist: stringList(row.ip_whitelist),
    allowedCountries: stringList(row.allowed_countries),
    lifetimeDays: Number(row.lifetime_days),
    expiresAt: Number(row.expires_at),
    version: Number(row.version),
    revokedAt: num(row.revoked_at),
    suspendedAt: num(row.suspended_at),
    suspendedReason: row.suspended_reason,
    rotationRemindedAt: num(row.rotation_reminded_at),
    regeneratedAt: num(row.regenerated_at),
    lastUsedAt: num(row.last_used_at),
    lastSignedAt: num(row.last_signed_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** Revoked, then expired, then suspended: the most lasting state is the one reported. */
export function statusOf(record: ApiKeyRecord, now: number): KeyStatus {
  if (record.revokedAt !== null) return 'revoked';
  if (record.expiresAt <= now) return 'expired';
  if (record.suspendedAt !== null) return 'suspended';
  return 'active';
}
