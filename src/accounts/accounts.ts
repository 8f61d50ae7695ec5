import type { Transaction } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import { fail, ok, type Result } from '../errors/registry.js';
import type { Clock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import type { SecurityEvents } from '../security/events/index.js';
import { publishRole } from '../security/identity/revocation.js';
import type { Role } from '../security/rbac/roles.js';
import type { Store } from '../store/db.js';
import type { Database } from '../store/schema.js';
import type { SharedState } from '../state/port.js';
import { canonicalWallet, chainOf, isWalletAddress, type Chain } from './wallets.js';

export interface Account {
  id: string;
  wallet: string;
  chain: Chain;
  role: Role;
  createdAt: number;
}

export function toAccount(row: { id: string; wallet: string; chain: string; role: string; created_at: number }): Account {
  return { id: row.id, wallet: row.wallet, chain: row.chain as Chain, role: row.role as Role, createdAt: Number(row.created_at) };
}

/**
 * The account a write acts on: its id, or (an admin preparing an account before its first sign-in)
 * how to find or create it inside the write's own transaction, so that a write that fails or is
 * refused there leaves no account behind.
 */
export type AccountRef = string | ((trx: Transaction<Database>) => Promise<string>);

/** What never changes about an account once it exists (its role does change: read it elsewhere). */
export type AccountIdentity = Omit<Account, 'role'>;

const IDENTITY_CACHE_SIZE = 10_000;

/** Accounts are identified by wallet address; the first sign-in creates one. */
export class Accounts {
  /** id → identity; bounded, oldest first out. Accounts are never deleted or re-keyed, so entries never go stale. */
  private readonly identities = new Map<string, AccountIdentity>();

  constructor(
    private readonly deps: { store: Store; state: SharedState; clock: Clock; events: SecurityEvents; bootstrapAdmin: string | undefined; roleTtlMs: number; audit?: AuditLog },
  ) {}

  async byWallet(address: string): Promise<Account | undefined> {
    const row = await this.deps.store.db.selectFrom('accounts').selectAll().where('wallet', '=', canonicalWallet(address)).executeTakeFirst();
    return row ? toAccount(row) : undefined;
  }

  async byId(id: string): Promise<Account | undefined> {
    const row = await this.deps.store.db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toAccount(row) : undefined;
  }

  /**
   * The immutable part of an account (id, wallet, chain, creation time), from memory after the first
   * read: the request path of `GET /account` needs no database round trip. The role is left out on
   * purpose: it changes, and the one in force comes from the request's principal.
   */
  async identity(id: string): Promise<AccountIdentity | undefined> {
    const cached = this.identities.get(id);
    if (cached) return cached;
    const account = await this.byId(id);
    if (!account) return undefined;
    const identity: AccountIdentity = Object.freeze({ id: account.id, wallet: account.wallet, chain: account.chain, createdAt: account.createdAt });
    if (this.identities.size >= IDENTITY_CACHE_SIZE) this.identities.delete(this.identities.keys().next().value!);
    this.identities.set(id, identity);
    return identity;
  }

  /** The account of a wallet, created on first use (admin when it is MOONDRAFT_BOOTSTRAP_ADMIN). */
  async findOrCreate(address: string): Promise<Result<Account, 'validation_failed'>> {
    const chain = chainOf(address);
    if (!chain || !isWalletAddress(address)) return fail('validation_failed', 'Not a wallet address (a mixed-case Ethereum address needs a valid EIP-55 checksum; a Solana one is base58 of 32 bytes)');
    const wallet = canonicalWallet(address);
    const existing = await this.byWallet(wallet);
    if (existing) return ok(existing);
    await this.deps.store.db.insertInto('accounts').values(this.newRow(wallet, chain)).onConflict((oc) => oc.column('wallet').doNothing()).execute();
    const created = await this.byWallet(wallet);
    return created ? ok(created) : fail('validation_failed', 'Account could not be created');
  }

  /** As findOrCreate, in `trx`: an account it creates exists only if `trx` commits. */
  async findOrCreateIn(trx: Transaction<Database>, address: string): Promise<Result<Account, 'validation_failed'>> {
    const chain = chainOf(address);
    if (!chain || !isWalletAddress(address)) return fail('validation_failed', 'Not a wallet address (a mixed-case Ethereum address needs a valid EIP-55 checksum; a Solana one is base58 of 32 bytes)');
    const wallet = canonicalWallet(address);
    const byWallet = () => trx.selectFrom('accounts').selectAll().where('wallet', '=', wallet).executeTakeFirst();
    let row = await byWallet();
    if (!row) {
      await trx.insertInto('accounts').values(this.newRow(wallet, chain)).onConflict((oc) => oc.column('wallet').doNothing()).execute();
      row = await byWallet();
    }
    return row ? ok(toAccount(row)) : fail('validation_failed', 'Account could not be created');
  }

  /** A new account's row (admin when it is MOONDRAFT_BOOTSTRAP_ADMIN, else trader). */
  private newRow(wallet: string, chain: Chain) {
    const now = this.deps.clock.now();
    const isBootstrap = this.deps.bootstrapAdmin !== undefined && canonicalWallet(this.deps.bootstrapAdmin) === wallet;
    return { id: newId('acc', now), wallet, chain, role: isBootstrap ? 'admin' : 'trader', created_at: now, updated_at: now };
  }

  /**
   * Sets an account's role (creating the account if needed). The new role is also written to
   * shared state so that every process applies it to the account's very next request, including
   * requests carrying access tokens issued under the old role.
   *
   * `by` is who did it: an account id, or `cli`. With `byAdmin`, `by` is an admin's account id and
   * must still be an admin when the change commits (read under its row's lock in the same
   * transaction): two admins demoting each other at the same moment would otherwise both pass the
   * request's role check and leave the deployment with no admin; the second one is refused.
   */
  async setRole(address: string, role: Role, by: string, options: { byAdmin?: boolean; sessionId?: string } = {}): Promise<Result<Account, 'validation_failed' | 'forbidden_role'>> {
    const chain = chainOf(address);
    if (!chain || !isWalletAddress(address)) return fail('validation_failed', 'Not a wallet address (a mixed-case Ethereum address needs a valid EIP-55 checksum; a Solana one is base58 of 32 bytes)');
    const wallet = canonicalWallet(address);
    const postgres = this.deps.store.dialect === 'postgres';
    const now = this.deps.clock.now();
    // The change and its audit record commit together (admin actions are audited in their
    // transaction). The role it replaces is read under the row's lock inside that transaction: read
    // before, two racing changes could both see the old role, and the second, a real change, would
    // go unrecorded as a no-op (an unaudited promotion). An account the wallet does not have yet is
    // created in that transaction too, once the caller is known to be an admin: a refused change
    // leaves nothing behind.
    const changed = await this.deps.store.transaction(async (trx) => {
      let target = await trx.selectFrom('accounts').selectAll().where('wallet', '=', wallet).executeTakeFirst();
      if (!target) {
        if (options.byAdmin) {
          let q = trx.selectFrom('accounts').select('role').where('id', '=', by);
          if (postgres) q = q.forUpdate();
          if ((await q.executeTakeFirst())?.role !== 'admin') return undefined;
        }
        await trx.insertInto('accounts').values(this.newRow(wallet, chain)).onConflict((oc) => oc.column('wallet').doNothing()).execute();
        target = await trx.selectFrom('accounts').selectAll().where('wallet', '=', wallet).executeTakeFirstOrThrow();
      }
      const id = target.id;
      // Rows locked in id order, so that two admins changing each other cannot deadlock (SQLite
      // transactions begin IMMEDIATE: one at a time, no row locks needed).
      const ids = [...new Set(options.byAdmin ? [id, by] : [id])].sort();
      let q = trx.selectFrom('accounts').select(['id', 'role']).where('id', 'in', ids).orderBy('id');
      if (postgres) q = q.forUpdate();
      const rows = await q.execute();
      if (options.byAdmin && rows.find((r) => r.id === by)?.role !== 'admin') return undefined;
      const current = rows.find((r) => r.id === id)!.role;
      await trx.updateTable('accounts').set({ role, updated_at: now }).where('id', '=', id).execute();
      if (current !== role && this.deps.audit) {
        await this.deps.audit.recordIn(trx, { type: 'admin.role.changed', accountId: id, actorId: by, details: { from: current, to: role, by, ...(options.sessionId !== undefined ? { via: 'session', sessionId: options.sessionId } : {}) } });
      }
      return { account: toAccount(target), previous: current };
    });
    if (changed === undefined) return fail('forbidden_role', 'Only an admin may change roles, and the caller is no longer one');
    const { previous } = changed;
    const before = { ...changed.account, role: previous as Role };
    const roleChanged = previous !== role;
    // Announced once committed, before the publish: a publish that fails answers 503 for a change
    // that took effect, and this process's listeners (the key service's account cache) must still
    // hear of it; the security sync publishes it for the other processes.
    if (roleChanged) this.deps.events.emit({ type: 'role.changed', at: now, accountId: before.id, from: before.role, to: role, by, audited: this.deps.audit !== undefined });
    // The role in force, under the row's share lock: a racing change committed after this one is
    // written by its own publish, never overwritten by this one (revocation.ts).
    await publishRole(this.deps.store, this.deps.state, before.id, () => this.deps.roleTtlMs);
    return ok({ ...before, role });
  }
}

/**
 * Inside an admin write's transaction: locks the acting admin's account row with `others` (rows in
 * id order on PostgreSQL, as a role change locks them, so neither can deadlock the other; SQLite
 * transactions run one at a time) and answers whether `adminId` is still an admin as committed. The
 * request's role check ran before the write; a demotion committed since must refuse the write, as
 * it refuses a role change (setRole with `byAdmin`).
 */
export async function lockStillAdmin(store: Store, trx: Transaction<Database>, adminId: string, others: readonly string[] = []): Promise<boolean> {
  const ids = [...new Set([adminId, ...others])].sort();
  let q = trx.selectFrom('accounts').select(['id', 'role']).where('id', 'in', ids).orderBy('id');
  if (store.dialect === 'postgres') q = q.forUpdate();
  const rows = await q.execute();
  return rows.find((r) => r.id === adminId)?.role === 'admin';
}

export const NO_LONGER_ADMIN = 'The caller is no longer an admin: the change was refused when it was to commit';

/**
 * The account an admin write acts on, resolved and locked in its transaction (see AccountRef), with
 * `adminId` (when given) checked still an admin as committed (lockStillAdmin) before anything is
 * written: undefined when it is not, and then an account the write would prepare is not created.
 */
export async function lockAdminTarget(store: Store, trx: Transaction<Database>, account: AccountRef, adminId: string | undefined): Promise<string | undefined> {
  if (typeof account === 'string') {
    if (adminId === undefined) {
      if (store.dialect === 'postgres') await trx.selectFrom('accounts').select('id').where('id', '=', account).forUpdate().execute();
      return account;
    }
    return (await lockStillAdmin(store, trx, adminId, [account])) ? account : undefined;
  }
  if (adminId !== undefined && !(await lockStillAdmin(store, trx, adminId))) return undefined;
  const id = await account(trx);
  if (store.dialect === 'postgres') await trx.selectFrom('accounts').select('id').where('id', '=', id).forUpdate().execute();
  return id;
}
