import type { AuditLog } from '../../audit/audit-log.js';
import type { KeyObject } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { Logger } from 'pino';
import { lockStillAdmin, NO_LONGER_ADMIN, type Accounts } from '../../accounts/accounts.js';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { displayParagraphs, displayText } from '../../lib/text.js';
import type { Store } from '../../store/db.js';
import type { SharedState } from '../../state/port.js';
import type { Keyring } from '../crypto/keyring.js';
import type { SecurityEvents } from '../events/index.js';
import { sessionStateKeys } from '../identity/revocation.js';
import { bindsAddresses, canonicalAllowlistEntry, IpAllowlist, MAX_ALLOWLIST_ENTRIES, NARROWEST_BINDING_PREFIX } from '../network/allowlist.js';
import { canonicalCountryCode } from '../network/countries.js';
import { isRole, isScope, scopesAllowedForRole, type Role, type Scope } from '../rbac/roles.js';
import { ed25519PublicKey } from '../signing/verify.js';
import { BoundedCache } from './cache.js';
import { displayPrefix, generateApiKey, generateApiSecret, hashApiKey, type KeyEnvironment } from './format.js';
import { toRecord, type ApiKeyRecord, type KeyType } from './records.js';

const DAY_MS = 86_400_000;

/** Limits of API.md and issue 4, in one place. */
export const KEY_LIMITS = {
  /** A label's characters (the HTTP schema says the same). */
  maxLabel: 64,
  /**
   * Keys an account may hold that are not revoked. Rate limits are per key, so each key adds a
   * category's worth of requests; this bounds what one account can multiply them to.
   */
  maxKeysPerAccount: 30,
  /**
   * Revoked keys the list shows (the most recently revoked): revoked keys are kept, and creating
   * and revoking in a loop would otherwise grow one answer without end. Older ones are read by id.
   */
  maxRevokedListed: 100,
  maxIpWhitelist: MAX_ALLOWLIST_ENTRIES,
  maxCountries: 50,
  /** The spec's rotation period. */
  defaultExpiresInDays: 90,
  maxExpiresInDays: { live: 365, sandbox: 3650 } as Record<KeyEnvironment, number>,
  /** Regeneration may keep the old credential valid for up to 24 h. */
  maxGracePeriodSeconds: 86_400,
  /** A key.rotation_due event this long before expiry. */
  rotationReminderMs: 14 * DAY_MS,
} as const;

/**
 * In-process caches keep the request path off the database. Their maximum age bounds how long a
 * change can go unseen by a process whose invalidation message was lost; the version flag in shared
 * state (checked on every request) makes revocation and every other key change immediate anyway.
 */
const RECORD_CACHE = { maxEntries: 10_000, maxAgeMs: 60_000 };
const UNKNOWN_CACHE = { maxEntries: 10_000, maxAgeMs: 60_000 };
const ACCOUNT_CACHE = { maxEntries: 10_000, maxAgeMs: 60_000 };
/** Plaintext hmac secrets: only here, only in memory, bounded, wiped when evicted. */
const SECRET_CACHE = { maxEntries: 10_000, maxAgeMs: 5 * 60_000 };
/**
 * How long a key's version flag stays in shared state after a change. It must outlive every cached
 * copy made before the change (RECORD_CACHE.maxAgeMs); after it expires every cache is newer anyway.
 */
const VERSION_FLAG_TTL_MS = 3_600_000;
/** last_used_at / last_signed_at are written at most this often per key and process. */
const USAGE_WRITE_INTERVAL_MS = 60_000;

const CHANNEL_KEY_CHANGED = 'apikeys:changed';
const CHANNEL_ACCOUNT_CHANGED = 'apikeys:account-changed';

export function versionFlagKey(keyId: string): string {
  return `apikey:v:${keyId}`;
}

export interface ApiKeysDeps {
  store: Store;
  state: SharedState;
  clock: Clock;
  keyring: Keyring;
  events: SecurityEvents;
  accounts: Accounts;
  log: Logger;
  env: KeyEnvironment;
  /** Key management is audited in the transaction of the change. */
  audit?: AuditLog;
}

type KeyAuditType = 'admin.key.updated' | 'admin.key.regenerated' | 'admin.key.revoked' | 'admin.key.suspended' | 'admin.key.unsuspended';

/** Who manages a key: the signed-in account, its role in force now, and the session it used. */
export interface Owner {
  accountId: string;
  role: Role;
  /** The session the change was made with, named in the audit record (as other admin records do). */
  sessionId?: string | undefined;
}

/** The session a change was made with, for its audit record. */
function via(sessionId: string | undefined): Record<string, unknown> {
  return sessionId === undefined ? {} : { via: 'session', sessionId };
}

export interface CreateKeyInput {
  label: string;
  scopes: readonly string[];
  ipWhitelist?: readonly string[] | undefined;
  allowedCountries?: readonly string[] | undefined;
  expiresInDays?: number | undefined;
  type?: KeyType | undefined;
  publicKey?: string | undefined;
}

export interface UpdateKeyInput {
  label?: string | undefined;
  scopes?: readonly string[] | undefined;
  ipWhitelist?: readonly string[] | undefined;
  allowedCountries?: readonly string[] | undefined;
}

export interface RegenerateInput {
  gracePeriodSeconds?: number | undefined;
  /** ed25519 keys: the new public key (the server never holds the private one). */
  publicKey?: string | undefined;
  expiresInDays?: number | undefined;
}

/** A key as the request path needs it: the record, its owner's wallet and the owner's role in force now. */
export interface ResolvedKey {
  record: ApiKeyRecord;
  wallet: string;
  role: Role;
}

interface AccountEntry {
  wallet: string;
  role: Role;
}

/** Which credential of a key: the current one, or the one replaced by a regeneration (grace period). */
export type CredentialSlot = 'current' | 'previous';

/**
 * API keys: creation, management and the lookups the request path needs.
 *
 * Storage: SHA-256 of the key for lookup, a short display prefix, the hmac secret encrypted under
 * the keyring (AAD = key id), or an ed25519 public key only. Every change bumps the row's version
 * and writes it to shared state (`apikey:v:<id>`), which the request path reads in the same round
 * trip as the owner's role override; a newer version there makes the process reload the record.
 * Changes are also published so other processes drop their cached copies early.
 */
export class ApiKeys {
  private readonly records: BoundedCache<string, ApiKeyRecord>;
  private readonly unknown: BoundedCache<string, true>;
  private readonly accountCache: BoundedCache<string, AccountEntry>;
  private readonly secrets: BoundedCache<string, Buffer>;
  private readonly publicKeys: BoundedCache<string, KeyObject>;
  private readonly allowlists: BoundedCache<string, IpAllowlist>;
  private readonly loading = new Map<string, Promise<ApiKeyRecord | null>>();
  private readonly usageWrittenAt = new Map<string, number>();
  private unsubscribers: (() => Promise<void> | void)[] = [];

  /** Whether changes are recorded in their own transaction (so their security events need not be). */
  private get audited(): boolean {
    return this.deps.audit !== undefined;
  }

  constructor(private readonly deps: ApiKeysDeps) {
    const clock = deps.clock;
    this.records = new BoundedCache({ ...RECORD_CACHE, clock });
    this.unknown = new BoundedCache({ ...UNKNOWN_CACHE, clock });
    this.accountCache = new BoundedCache({ ...ACCOUNT_CACHE, clock });
    this.secrets = new BoundedCache({ ...SECRET_CACHE, clock, onEvict: (b) => b.fill(0) });
    this.publicKeys = new BoundedCache({ ...RECORD_CACHE, clock });
    this.allowlists = new BoundedCache({ ...RECORD_CACHE, clock });
  }

  get environment(): KeyEnvironment {
    return this.deps.env;
  }

  /** Subscribes to invalidations from other processes and to local role changes. */
  async start(): Promise<void> {
    const { state, events } = this.deps;
    this.unsubscribers.push(await state.subscribe(CHANNEL_KEY_CHANGED, (keyId) => this.forgetKey(keyId)));
    this.unsubscribers.push(await state.subscribe(CHANNEL_ACCOUNT_CHANGED, (accountId) => this.accountCache.delete(accountId)));
    this.unsubscribers.push(
      events.subscribe((e) => {
        if (e.type !== 'role.changed' || !e.accountId) return;
        this.accountCache.delete(e.accountId);
        return state.publish(CHANNEL_ACCOUNT_CHANGED, e.accountId).catch((err) => this.deps.log.warn({ err }, 'could not publish an account change'));
      }),
    );
  }

  async stop(): Promise<void> {
    for (const u of this.unsubscribers.splice(0)) await u();
    this.secrets.clear();
  }

  // ---------------------------------------------------------------- request path

  /**
   * The key behind a presented API key, with its owner's role in force now; undefined when no such
   * key exists. One shared-state round trip (version flag and role override) and, normally, no
   * database access at all.
   */
  async resolve(apiKey: string): Promise<ResolvedKey | undefined> {
    const hash = hashApiKey(apiKey);
    let record: ApiKeyRecord | null | undefined = this.records.get(hash);
    if (record === undefined) {
      if (this.unknown.get(hash)) return undefined;
      record = await this.loadOnce(hash, () => this.fetch('key_hash', hash));
      if (record === null) return undefined;
    }
    const [flag, roleOverride] = await this.deps.state.getMany([versionFlagKey(record.id), sessionStateKeys('', record.accountId).role]);
    if (flag !== null && Number(flag) > record.version) {
      const id = record.id;
      const announced = Number(flag);
      record = await this.loadOnce(`id:${id}`, () => this.fetch('id', id));
      // A load already under way (joined above) may have read the key before the change it is now
      // told of (a revocation, say): read it again rather than serve that older copy.
      if (record !== null && record.version < announced) record = await this.fetch('id', id);
      if (record === null || record.version < announced) return undefined;
    }
    const account = await this.account(record.accountId);
    if (!account) return undefined;
    // A role in shared state that this server cannot read refuses the key, as it refuses a session
    // (the account's stored role may predate a demotion).
    if (roleOverride !== null && !isRole(roleOverride)) return undefined;
    const role = roleOverride ?? account.role;
    return { record, wallet: account.wallet, role };
  }

  /** The plaintext hmac secret of a credential slot (from the bounded cache, else decrypted). */
  secretFor(record: ApiKeyRecord, slot: CredentialSlot): Buffer | undefined {
    const enc = slot === 'current' ? record.secretEnc : record.prevSecretEnc;
    if (!enc) return undefined;
    const cacheKey = `${record.id}:${record.version}:${slot}`;
    let secret = this.secrets.get(cacheKey);
    if (!secret) {
      try {
        secret = this.deps.keyring.decryptBuffer(enc, record.id);
      } catch (err) {
        // A keyring without the version this row was encrypted under (a server not restarted
        // after `keys rotate-master`) or a tampered row: an operator problem, reported as such.
        throw new Error(`cannot decrypt the secret of API key ${record.id}: ${(err as Error).message}`, { cause: err });
      }
      this.secrets.set(cacheKey, secret);
    }
    return secret;
  }

  publicKeyFor(record: ApiKeyRecord, slot: CredentialSlot): KeyObject | undefined {
    const hex = slot === 'current' ? record.publicKey : record.prevPublicKey;
    if (!hex) return undefined;
    const cacheKey = `${record.id}:${record.version}:${slot}`;
    let key = this.publicKeys.get(cacheKey);
    if (!key) {
      key = ed25519PublicKey(hex);
      this.publicKeys.set(cacheKey, key);
    }
    return key;
  }

  allowlistFor(record: ApiKeyRecord): IpAllowlist {
    const cacheKey = `${record.id}:${record.version}`;
    let list = this.allowlists.get(cacheKey);
    if (!list) {
      list = new IpAllowlist(record.ipWhitelist);
      this.allowlists.set(cacheKey, list);
    }
    return list;
  }

  /**
   * Records that a key was used (and whether signed) for the key list and the checklist, at most
   * once a minute per key and process, so the request path writes to the database only rarely. A
   * failed write is logged, never a reason to refuse the request.
   */
  async noteUse(record: ApiKeyRecord, signed: boolean): Promise<void> {
    const now = this.deps.clock.now();
    const slot = `${record.id}:${signed ? 's' : 'u'}`;
    if (now - (this.usageWrittenAt.get(slot) ?? -Infinity) < USAGE_WRITE_INTERVAL_MS) return;
    this.usageWrittenAt.set(slot, now);
    if (this.usageWrittenAt.size > RECORD_CACHE.maxEntries * 2) this.usageWrittenAt.clear();
    try {
      await this.deps.store.db
        .updateTable('api_keys')
        .set(signed ? { last_used_at: now, last_signed_at: now } : { last_used_at: now })
        .where('id', '=', record.id)
        .execute();
    } catch (err) {
      this.deps.log.warn({ err, keyId: record.id }, 'could not record API key use');
    }
  }

  /** Whether the store holds a key of this environment that is not revoked (one a request may have been signed with). */
  async anyUnrevoked(): Promise<boolean> {
    const row = await this.deps.store.db.selectFrom('api_keys').select('id').where('environment', '=', this.deps.env).where('revoked_at', 'is', null).limit(1).executeTakeFirst();
    return row !== undefined;
  }

  // ---------------------------------------------------------------- management

  async create(owner: Owner, input: CreateKeyInput): Promise<Result<{ record: ApiKeyRecord; apiKey: string; apiSecret: string | undefined }>> {
    const now = this.deps.clock.now();
    const type: KeyType = input.type ?? 'hmac';
    const checkedLabel = displayText(input.label, 'label', KEY_LIMITS.maxLabel);
    if (!checkedLabel.ok) return checkedLabel;
    const label = checkedLabel.value;
    const scopes = this.checkScopes(owner.role, input.scopes);
    if (!scopes.ok) return scopes;
    const ipWhitelist = checkWhitelist(input.ipWhitelist ?? []);
    if (!ipWhitelist.ok) return ipWhitelist;
    const countries = checkCountries(input.allowedCountries ?? []);
    if (!countries.ok) return countries;
    const rules = checkCombination(scopes.value, ipWhitelist.value);
    if (!rules.ok) return rules;
    const lifetime = this.checkLifetime(input.expiresInDays);
    if (!lifetime.ok) return lifetime;

    let publicKey: string | null = null;
    if (type === 'ed25519') {
      if (input.publicKey === undefined) return fail('validation_failed', 'An ed25519 key needs publicKey (32 bytes, hex)');
      const pk = checkPublicKey(input.publicKey);
      if (!pk.ok) return pk;
      publicKey = pk.value;
    } else if (input.publicKey !== undefined) {
      return fail('validation_failed', 'publicKey is only for ed25519 keys');
    }

    const id = newId('key', now);
    const apiKey = generateApiKey(this.deps.env);
    const apiSecret = type === 'hmac' ? generateApiSecret() : undefined;
    const row = {
      id,
      account_id: owner.accountId,
      label,
      type,
      environment: this.deps.env,
      key_hash: hashApiKey(apiKey),
      key_prefix: displayPrefix(apiKey),
      secret_enc: apiSecret === undefined ? null : this.deps.keyring.encrypt(apiSecret, id),
      public_key: publicKey,
      prev_secret_enc: null,
      prev_public_key: null,
      prev_valid_until: null,
      scopes: JSON.stringify(scopes.value),
      ip_whitelist: JSON.stringify(ipWhitelist.value),
      allowed_countries: JSON.stringify(countries.value),
      lifetime_days: lifetime.value,
      expires_at: now + lifetime.value * DAY_MS,
      version: 1,
      revoked_at: null,
      suspended_at: null,
      suspended_reason: null,
      rotation_reminded_at: null,
      regenerated_at: null,
      last_used_at: null,
      last_signed_at: null,
      created_at: now,
      updated_at: now,
    };
    const created = await this.deps.store.transaction(async (trx) => {
      // Limits are per key, so keys multiply them: an account holds a bounded number. The account
      // row is locked first on PostgreSQL, so two creations racing at the bound cannot both pass.
      let accountRow = trx.selectFrom('accounts').select('id').where('id', '=', owner.accountId);
      if (this.deps.store.dialect === 'postgres') accountRow = accountRow.forUpdate();
      await accountRow.executeTakeFirst();
      const held = await trx.selectFrom('api_keys').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', owner.accountId).where('revoked_at', 'is', null).executeTakeFirstOrThrow();
      if (Number(held.n) >= KEY_LIMITS.maxKeysPerAccount) return false;
      await trx.insertInto('api_keys').values(row).execute();
      await this.deps.audit?.recordIn(trx, { type: 'admin.key.created', accountId: owner.accountId, actorId: owner.accountId, details: { keyId: id, by: owner.accountId, type, scopes: scopes.value, ipWhitelist: ipWhitelist.value, allowedCountries: countries.value, ...via(owner.sessionId) } });
      return true;
    });
    if (!created) return fail('key_limit_exceeded', `An account holds at most ${KEY_LIMITS.maxKeysPerAccount} API keys that are not revoked; revoke one first`);
    this.unknown.delete(row.key_hash);
    this.deps.events.emit({ type: 'key.created', at: now, accountId: owner.accountId, keyId: id, by: owner.accountId, audited: this.audited });
    return ok({ record: toRecord(row), apiKey, apiSecret });
  }

  /** Every key of the account not revoked (at most maxKeysPerAccount) and the most recently revoked ones, newest first. */
  async list(accountId: string): Promise<ApiKeyRecord[]> {
    const db = this.deps.store.db;
    const held = await db.selectFrom('api_keys').selectAll().where('account_id', '=', accountId).where('revoked_at', 'is', null).execute();
    const revoked = await db
      .selectFrom('api_keys')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('revoked_at', 'is not', null)
      .orderBy('revoked_at', 'desc')
      .orderBy('id', 'desc')
      .limit(KEY_LIMITS.maxRevokedListed)
      .execute();
    return [...held, ...revoked].map(toRecord).sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  /** One of the account's keys; another account's key is reported as not found. */
  async get(accountId: string, id: string): Promise<Result<ApiKeyRecord>> {
    const record = await this.fetch('id', id);
    if (!record || record.accountId !== accountId) return fail('not_found', 'No such API key');
    return ok(record);
  }

  /** Any key by id (administrators). */
  async byId(id: string): Promise<ApiKeyRecord | undefined> {
    return (await this.fetch('id', id)) ?? undefined;
  }

  /** Changes label, IP whitelist and countries; scopes may only be narrowed. */
  async update(owner: Owner, id: string, input: UpdateKeyInput): Promise<Result<ApiKeyRecord>> {
    // The audit record says what the change was (each field from → to), decided on the row it replaced.
    const details: Record<string, unknown> = via(owner.sessionId);
    const result = await this.mutate(id, owner.accountId, (rec) => {
      if (rec.revokedAt !== null) return fail('conflict', 'The key is revoked; create a new one');
      const set: Record<string, unknown> = {};
      const changes: Record<string, { from: unknown; to: unknown }> = {};
      let scopes = rec.scopes;
      if (input.scopes !== undefined) {
        const checked = this.checkScopes(owner.role, input.scopes);
        if (!checked.ok) return checked;
        const widened = checked.value.filter((s) => !rec.scopes.includes(s));
        if (widened.length > 0) {
          return fail('validation_failed', `Scopes can only be narrowed; ${widened.join(', ')} would widen the key (create a new key instead)`);
        }
        scopes = checked.value;
        set.scopes = JSON.stringify(scopes);
        changes.scopes = { from: rec.scopes, to: scopes };
      }
      let whitelist = rec.ipWhitelist;
      if (input.ipWhitelist !== undefined) {
        const checked = checkWhitelist(input.ipWhitelist);
        if (!checked.ok) return checked;
        whitelist = checked.value;
        set.ip_whitelist = JSON.stringify(whitelist);
        changes.ipWhitelist = { from: rec.ipWhitelist, to: whitelist };
      }
      if (input.allowedCountries !== undefined) {
        const checked = checkCountries(input.allowedCountries);
        if (!checked.ok) return checked;
        set.allowed_countries = JSON.stringify(checked.value);
        changes.allowedCountries = { from: rec.allowedCountries, to: checked.value };
      }
      if (input.label !== undefined) {
        const label = displayText(input.label, 'label', KEY_LIMITS.maxLabel);
        if (!label.ok) return label;
        set.label = label.value;
        changes.label = { from: rec.label, to: label.value };
      }
      const rules = checkCombination(scopes, whitelist);
      if (!rules.ok) return rules;
      details.changes = changes;
      return ok(Object.keys(set).length > 0 ? set : null);
    }, { type: 'admin.key.updated', by: owner.accountId, details });
    if (!result.ok) return result;
    if (result.value.changed) this.deps.events.emit({ type: 'key.updated', audited: this.audited, at: this.deps.clock.now(), accountId: owner.accountId, keyId: id, by: owner.accountId });
    return ok(result.value.record);
  }

  /**
   * A new credential (hmac: a new secret, shown once; ed25519: the public key supplied) and a fresh
   * expiry. The previous credential stays valid for `gracePeriodSeconds` (0–24 h, default 0), never
   * past its own expiry: regenerating an expired key does not bring its dead credential back.
   */
  async regenerate(owner: Owner, id: string, input: RegenerateInput): Promise<Result<{ record: ApiKeyRecord; apiSecret: string | undefined }>> {
    const grace = input.gracePeriodSeconds ?? 0;
    if (!Number.isInteger(grace) || grace < 0 || grace > KEY_LIMITS.maxGracePeriodSeconds) {
      return fail('validation_failed', `gracePeriodSeconds must be a whole number from 0 to ${KEY_LIMITS.maxGracePeriodSeconds}`);
    }
    let apiSecret: string | undefined;
    const result = await this.mutate(id, owner.accountId, (rec, now) => {
      if (rec.revokedAt !== null) return fail('conflict', 'The key is revoked; create a new one');
      const lifetime = this.checkLifetime(input.expiresInDays ?? rec.lifetimeDays);
      if (!lifetime.ok) return lifetime;
      const prevUntil = Math.min(now + grace * 1000, rec.expiresAt);
      const keepPrev = grace > 0 && prevUntil > now;
      const set: Record<string, unknown> = {
        lifetime_days: lifetime.value,
        expires_at: now + lifetime.value * DAY_MS,
        rotation_reminded_at: null,
        regenerated_at: now,
        prev_valid_until: keepPrev ? prevUntil : null,
      };
      if (rec.type === 'hmac') {
        if (input.publicKey !== undefined) return fail('validation_failed', 'publicKey is only for ed25519 keys');
        apiSecret = generateApiSecret();
        set.secret_enc = this.deps.keyring.encrypt(apiSecret, rec.id);
        set.prev_secret_enc = keepPrev ? rec.secretEnc : null;
      } else {
        if (input.publicKey === undefined) return fail('validation_failed', 'Regenerating an ed25519 key needs the new publicKey');
        const pk = checkPublicKey(input.publicKey);
        if (!pk.ok) return pk;
        if (pk.value === rec.publicKey) return fail('validation_failed', 'The new publicKey must differ from the current one');
        set.public_key = pk.value;
        set.prev_public_key = keepPrev ? rec.publicKey : null;
      }
      return ok(set);
    }, { type: 'admin.key.regenerated', by: owner.accountId, details: via(owner.sessionId) }, { announceBestEffort: true });
    if (!result.ok) return result;
    this.deps.events.emit({ type: 'key.regenerated', audited: this.audited, at: this.deps.clock.now(), accountId: owner.accountId, keyId: id, by: owner.accountId });
    return ok({ record: result.value.record, apiSecret });
  }

  /** Revokes a key at once on every process; its encrypted secrets are erased. Idempotent. */
  async revoke(owner: Owner, id: string): Promise<Result<ApiKeyRecord>> {
    const result = await this.mutate(id, owner.accountId, (rec, now) => {
      if (rec.revokedAt !== null) return ok(null);
      return ok({ revoked_at: now, secret_enc: null, prev_secret_enc: null, prev_public_key: null, prev_valid_until: null });
    }, { type: 'admin.key.revoked', by: owner.accountId, details: via(owner.sessionId) });
    if (!result.ok) return result;
    if (result.value.changed) this.deps.events.emit({ type: 'key.revoked', audited: this.audited, at: this.deps.clock.now(), accountId: owner.accountId, keyId: id, by: owner.accountId });
    return ok(result.value.record);
  }

  /**
   * Suspends a key (administrators now, automated response later); it answers key_suspended until
   * unsuspended. With `byAdmin`, `by` must still be an admin as committed: a demotion committed
   * after the request's role check refuses the change (forbidden_role).
   */
  async suspend(id: string, by: string, reasonInput: string | undefined, sessionId?: string, options: { byAdmin?: boolean } = {}): Promise<Result<ApiKeyRecord>> {
    // The key's owner reads the reason: no control, bidirectional or invisible formatting
    // characters (a NUL byte would also fail the update on PostgreSQL). Blank: no reason.
    let reason: string | null = null;
    if (reasonInput !== undefined) {
      const text = displayParagraphs(reasonInput, 'reason', 200);
      if (!text.ok) return text;
      reason = text.value === '' ? null : text.value;
    }
    const result = await this.mutate(id, undefined, (rec, now) => {
      if (rec.revokedAt !== null) return fail('conflict', 'The key is revoked');
      if (rec.suspendedAt !== null) return ok(null);
      return ok({ suspended_at: now, suspended_reason: reason });
    }, { type: 'admin.key.suspended', by, details: { reason, ...via(sessionId) } }, { stillAdmin: options.byAdmin ? by : undefined });
    if (!result.ok) return result;
    if (result.value.changed) this.deps.events.emit({ type: 'key.suspended', audited: this.audited, at: this.deps.clock.now(), accountId: result.value.record.accountId, keyId: id, by });
    return ok(result.value.record);
  }

  /** Lifts a key's suspension; `byAdmin` as for suspend. */
  async unsuspend(id: string, by: string, sessionId?: string, options: { byAdmin?: boolean } = {}): Promise<Result<ApiKeyRecord>> {
    const result = await this.mutate(id, undefined, (rec) => {
      if (rec.revokedAt !== null) return fail('conflict', 'The key is revoked');
      if (rec.suspendedAt === null) return ok(null);
      return ok({ suspended_at: null, suspended_reason: null });
    }, { type: 'admin.key.unsuspended', by, details: via(sessionId) }, { stillAdmin: options.byAdmin ? by : undefined });
    if (!result.ok) return result;
    if (result.value.changed) this.deps.events.emit({ type: 'key.unsuspended', audited: this.audited, at: this.deps.clock.now(), accountId: result.value.record.accountId, keyId: id, by });
    return ok(result.value.record);
  }

  /**
   * Emits key.rotation_due once for every live-or-sandbox key of this environment that expires within
   * 14 days. The claim is a conditional update, so with several processes exactly one emits.
   */
  async sweepRotationReminders(): Promise<string[]> {
    const now = this.deps.clock.now();
    const due = await this.deps.store.db
      .selectFrom('api_keys')
      .select(['id', 'account_id'])
      .where('environment', '=', this.deps.env)
      .where('revoked_at', 'is', null)
      .where('rotation_reminded_at', 'is', null)
      .where('expires_at', '>', now)
      .where('expires_at', '<=', now + KEY_LIMITS.rotationReminderMs)
      .execute();
    const reminded: string[] = [];
    for (const key of due) {
      // The claim repeats the conditions of the query: a key regenerated (new expiry, reminder
      // cleared) or revoked since it was read is not due any more, and claiming it would use up the
      // reminder of its new period.
      const claimed = await this.deps.store.db
        .updateTable('api_keys')
        .set({ rotation_reminded_at: now })
        .where('id', '=', key.id)
        .where('revoked_at', 'is', null)
        .where('rotation_reminded_at', 'is', null)
        .where('expires_at', '>', now)
        .where('expires_at', '<=', now + KEY_LIMITS.rotationReminderMs)
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) continue;
      reminded.push(key.id);
      this.deps.events.emit({ type: 'key.rotation_due', at: now, accountId: key.account_id, keyId: key.id });
    }
    return reminded;
  }

  // ---------------------------------------------------------------- internals

  /**
   * Read-modify-write of one key with optimistic concurrency on `version`. `change` returns the
   * columns to set, or null for "nothing to change". `stillAdmin`: an account id that must still be
   * an admin as committed (read under its row's lock in the change's transaction, lockStillAdmin),
   * else the change is refused (forbidden_role) and nothing is written or announced.
   */
  private async mutate(
    id: string,
    accountId: string | undefined,
    change: (rec: ApiKeyRecord, now: number) => Result<Record<string, unknown> | null>,
    audit: { type: KeyAuditType; by: string; details?: Record<string, unknown> },
    options: { announceBestEffort?: boolean; stillAdmin?: string | undefined } = {},
  ): Promise<Result<{ record: ApiKeyRecord; changed: boolean }>> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const rec = await this.fetch('id', id);
      if (!rec || (accountId !== undefined && rec.accountId !== accountId)) return fail('not_found', 'No such API key');
      const now = this.deps.clock.now();
      const decided = change(rec, now);
      if (!decided.ok) return decided;
      if (decided.value === null) {
        // Nothing to change: the change was made before, but its announcement may have failed
        // (shared state down: the caller heard 503 and retries). Announce it again: the flag is a
        // setMax, so a racing later change is never announced below its version.
        await this.announce(rec);
        return ok({ record: rec, changed: false });
      }
      // The change and its audit record commit together.
      const row = await this.deps.store.transaction(async (trx) => {
        if (options.stillAdmin !== undefined && !(await lockStillAdmin(this.deps.store, trx, options.stillAdmin))) return 'no_longer_admin' as const;
        const updated = await trx
          .updateTable('api_keys')
          .set({ ...decided.value, version: rec.version + 1, updated_at: now })
          .where('id', '=', id)
          .where('version', '=', rec.version)
          .returningAll()
          .executeTakeFirst();
        if (updated) await this.deps.audit?.recordIn(trx, { type: audit.type, accountId: rec.accountId, actorId: audit.by, details: { keyId: id, by: audit.by, ...audit.details } });
        return updated;
      });
      if (row === 'no_longer_admin') return fail('forbidden_role', NO_LONGER_ADMIN);
      if (!row) continue; // changed concurrently: decide again on the fresh row
      const updated = toRecord(row);
      if (options.announceBestEffort) {
        // A change whose answer cannot be asked for again (a regenerated secret, shown once): a
        // 503 now would lose what committed, and the retry it invites would replace the secret
        // still in use. This process already serves the new version; the security sync announces
        // it to the others within seconds (republishChanged), as after a crash right here.
        await this.announce(updated).catch((err: unknown) => this.deps.log.warn({ err, keyId: id }, 'could not announce a key change; the security sync will'));
      } else {
        await this.announce(updated);
      }
      return ok({ record: updated, changed: true });
    }
    return fail('conflict', 'The key is being changed concurrently; try again');
  }

  /**
   * Announces again the version of every key changed since `since` (the security sync, every few
   * seconds). A change whose own announcement failed (shared state away: the caller heard 503 and
   * may never retry; or the process stopped between commit and announcement), or whose flag shared
   * state lost (Redis restarted empty), reaches every process's cache by the next pass instead of
   * when their cached copies age out. setMax: never below a version already announced.
   */
  async republishChanged(since: number): Promise<number> {
    const now = this.deps.clock.now();
    const rows = await this.deps.store.db.selectFrom('api_keys').select(['id', 'version', 'updated_at']).where('updated_at', '>=', since).execute();
    for (const r of rows) {
      const ttl = Number(r.updated_at) + VERSION_FLAG_TTL_MS - now;
      if (ttl > 0) await this.deps.state.setMax(versionFlagKey(r.id), Number(r.version), ttl);
    }
    return rows.length;
  }

  /** Tells every process about a key's new version: the flag first (immediate), then a cache drop. */
  private async announce(record: ApiKeyRecord): Promise<void> {
    this.forgetKey(record.id);
    this.remember(record);
    // Never below a later version announced by a racing change (setMax), so a process holding an
    // older copy always sees that it must reload, even if the pub/sub message is lost.
    await this.deps.state.setMax(versionFlagKey(record.id), record.version, VERSION_FLAG_TTL_MS);
    await this.deps.state.publish(CHANNEL_KEY_CHANGED, record.id);
  }

  private forgetKey(keyId: string): void {
    // Key changes are rare; a scan of the bounded cache is cheaper than keeping a second index right.
    this.records.deleteWhere((r) => r.id === keyId);
    const prefix = `${keyId}:`;
    this.secrets.deleteWhere((_v, k) => k.startsWith(prefix));
    this.publicKeys.deleteWhere((_v, k) => k.startsWith(prefix));
    this.allowlists.deleteWhere((_v, k) => k.startsWith(prefix));
  }

  private remember(record: ApiKeyRecord): void {
    this.records.set(record.keyHash, record);
  }

  /** Loads once however many requests ask at the same moment, and caches the answer. */
  private loadOnce(slot: string, load: () => Promise<ApiKeyRecord | null>): Promise<ApiKeyRecord | null> {
    let pending = this.loading.get(slot);
    if (!pending) {
      pending = load().finally(() => this.loading.delete(slot));
      this.loading.set(slot, pending);
    }
    return pending;
  }

  private async fetch(by: 'id' | 'key_hash', value: string): Promise<ApiKeyRecord | null> {
    const row = await this.deps.store.db.selectFrom('api_keys').selectAll().where(by, '=', value).executeTakeFirst();
    if (!row) {
      if (by === 'key_hash') this.unknown.set(value, true);
      return null;
    }
    const record = toRecord(row);
    this.remember(record);
    return record;
  }

  private async account(accountId: string): Promise<AccountEntry | undefined> {
    const cached = this.accountCache.get(accountId);
    if (cached) return cached;
    const account = await this.deps.accounts.byId(accountId);
    if (!account) return undefined;
    const entry = { wallet: account.wallet, role: account.role };
    this.accountCache.set(accountId, entry);
    return entry;
  }

  /** Scopes known, not repeated, and all allowed to the owner's role (refused otherwise: forbidden_role). */
  private checkScopes(role: Role, requested: readonly string[]): Result<Scope[]> {
    if (requested.length === 0) return fail('validation_failed', 'A key needs at least one scope');
    const unknown = requested.filter((s) => !isScope(s));
    if (unknown.length > 0) return fail('validation_failed', `Unknown scopes: ${unknown.join(', ')}`);
    const scopes = [...new Set(requested as Scope[])];
    const allowed = scopesAllowedForRole(role);
    const beyond = scopes.filter((s) => !allowed.includes(s));
    if (beyond.length > 0) {
      return fail('forbidden_role', `The ${role} role may not hold ${beyond.join(', ')}`, { allowedScopes: allowed });
    }
    return ok(scopes);
  }

  private checkLifetime(days: number | undefined): Result<number> {
    const value = days ?? KEY_LIMITS.defaultExpiresInDays;
    const max = KEY_LIMITS.maxExpiresInDays[this.deps.env];
    if (!Number.isInteger(value) || value < 1 || value > max) {
      return fail('validation_failed', `expiresInDays must be a whole number from 1 to ${max} in ${this.deps.env}`);
    }
    return ok(value);
  }
}

function checkWhitelist(entries: readonly string[]): Result<string[]> {
  if (entries.length > KEY_LIMITS.maxIpWhitelist) {
    return fail('validation_failed', `ipWhitelist holds at most ${KEY_LIMITS.maxIpWhitelist} entries (got ${entries.length})`);
  }
  const out: string[] = [];
  for (const [i, entry] of entries.entries()) {
    const canonical = canonicalAllowlistEntry(entry);
    if (!canonical) return fail('validation_failed', `ipWhitelist[${i}] is not an IPv4/IPv6 address or CIDR range`);
    if (!out.includes(canonical)) out.push(canonical);
  }
  return ok(out);
}

function checkCountries(codes: readonly string[]): Result<string[]> {
  if (codes.length > KEY_LIMITS.maxCountries) return fail('validation_failed', `allowedCountries holds at most ${KEY_LIMITS.maxCountries} entries`);
  const out: string[] = [];
  for (const [i, code] of codes.entries()) {
    const canonical = canonicalCountryCode(code);
    if (!canonical) return fail('validation_failed', `allowedCountries[${i}] is not an ISO 3166-1 alpha-2 code`);
    if (!out.includes(canonical)) out.push(canonical);
  }
  return ok(out);
}

/** Rules across fields: a key that can withdraw must be bound to addresses. */
function checkCombination(scopes: readonly Scope[], whitelist: readonly string[]): Result<true> {
  if (scopes.includes('withdrawals:write') && whitelist.length === 0) {
    return fail('validation_failed', 'A key with withdrawals:write must have an ipWhitelist');
  }
  if (scopes.includes('withdrawals:write') && !bindsAddresses(whitelist)) {
    return fail(
      'validation_failed',
      `A key with withdrawals:write must have an ipWhitelist of addresses or ranges no wider than /${NARROWEST_BINDING_PREFIX.ipv4} (IPv4) or /${NARROWEST_BINDING_PREFIX.ipv6} (IPv6)`,
    );
  }
  return ok(true);
}

/** An ed25519 public key: 32 bytes hex (or an SPKI PEM), a valid point of large order. */
export function checkPublicKey(input: string): Result<string> {
  let hex = input.trim().toLowerCase();
  const pem = /^-----begin public key-----([a-z0-9+/=\s]+)-----end public key-----$/i.exec(input.trim());
  if (pem) {
    const der = Buffer.from(pem[1]!.replace(/\s+/g, ''), 'base64');
    // SPKI of Ed25519: a fixed 12-byte header (OID 1.3.101.112) then the 32 key bytes.
    if (der.length !== 44 || der.subarray(0, 12).toString('hex') !== '302a300506032b6570032100') {
      return fail('validation_failed', 'publicKey is not an Ed25519 public key');
    }
    hex = der.subarray(12).toString('hex');
  }
  if (!/^[0-9a-f]{64}$/.test(hex)) return fail('validation_failed', 'publicKey must be 32 bytes as hex (or an Ed25519 SPKI PEM)');
  try {
    const point = ed25519.Point.fromBytes(Buffer.from(hex, 'hex'), false);
    if (point.isSmallOrder()) return fail('validation_failed', 'publicKey is a small-order point');
  } catch {
    return fail('validation_failed', 'publicKey is not a valid Ed25519 point');
  }
  return ok(hex);
}
