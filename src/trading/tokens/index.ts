import type { Kysely, Transaction } from 'kysely';
import type { AuditLog } from '../../audit/audit-log.js';
import type { TokensConfig } from '../../config/index.js';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Role } from '../../security/rbac/roles.js';
import type { Store } from '../../store/db.js';
import type { Database, TokensTable } from '../../store/schema.js';
import { ASSET_SYMBOL, defaultMarketTerms, USDC, type Assets, type Market } from '../assets/index.js';
import { SYSTEM_OWNERS, type Ledger } from '../ledger/index.js';
import { formatAmount, pow10, readMinor } from '../money.js';
import type { Actor } from '../orders/types.js';
import type { Chain } from '../withdrawals/addresses.js';
import { MAX_LAUNCH_DECIMALS, MAX_SUPPLY_MINOR, RESERVED_SYMBOLS, STANDARD_MAX_SUPPLY, validDescription, validHttpsUrl, validName } from './metadata.js';

export { RESERVED_SYMBOLS, STANDARD_MAX_SUPPLY } from './metadata.js';

const DAY = 86_400_000;

export interface Token {
  symbol: string;
  name: string;
  decimals: number;
  chain: Chain;
  /** Minor units issued at launch. */
  supply: bigint;
  description: string | null;
  website: string | null;
  imageUrl: string | null;
  market: string;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

export interface LaunchInput {
  name: string;
  symbol: string;
  decimals: number;
  /** Whole tokens, a decimal integer string. */
  supply: string;
  chain?: Chain;
  description?: string;
  website?: string;
  imageUrl?: string;
}

/** Fields the creator may change; `null` clears an optional one. */
export interface TokenPatch {
  name?: string;
  description?: string | null;
  website?: string | null;
  imageUrl?: string | null;
}

/** Who launches or changes a token: the account, its role, and the session or key it used. */
export interface TokenActor {
  accountId: string;
  role: Role;
  actor: Actor;
}

type Executor = Kysely<Database> | Transaction<Database>;

function via(actor: Actor) {
  return actor.kind === 'apiKey' ? { via: 'apiKey', keyId: actor.id } : { via: actor.kind, sessionId: actor.id };
}

/** Serializes an account's launches and withdrawals on PostgreSQL (SQLite transactions are serial already). */
export async function lockAccount(store: Store, trx: Transaction<Database>, accountId: string): Promise<void> {
  if (store.dialect === 'postgres') await trx.selectFrom('accounts').select('id').where('id', '=', accountId).forUpdate().execute();
}

/**
 * Token launches (issue 7): a trader or admin creates an asset with standard parameters, receives
 * its whole supply from the issuance account, and the market SYMBOL-USDC is listed — all in one
 * ledger transaction with its audit record, so a launch happens entirely or not at all. Tokens
 * launched here withdraw on the chain they name (`evm` unless `chain` says `solana`).
 *
 * The asset row (symbol, decimals, launch name) never changes, as the trading core assumes; the
 * creator's later edits (name, description, website, image) live in the token's own row.
 */
export class Tokens {
  constructor(private readonly deps: { store: Store; ledger: Ledger; assets: Assets; audit: AuditLog; config: TokensConfig }) {}

  async launch(
    who: TokenActor,
    input: LaunchInput,
  ): Promise<Result<{ token: Token; market: Market }, 'validation_failed' | 'conflict' | 'forbidden_role' | 'token_creation_limit_exceeded'>> {
    const { assets, ledger, audit, store, config } = this.deps;
    const name = validName(input.name);
    if (!name.ok) return name;
    if (!ASSET_SYMBOL.test(input.symbol)) return fail('validation_failed', 'symbol must be 2–10 uppercase letters or digits');
    if (!Number.isInteger(input.decimals) || input.decimals < 0 || input.decimals > MAX_LAUNCH_DECIMALS) {
      return fail('validation_failed', `decimals must be a whole number from 0 to ${MAX_LAUNCH_DECIMALS} (an order moves at most 2^63-1 minor units: more decimals would leave the token almost untradeable)`);
    }
    if (!/^[1-9][0-9]{0,39}$/.test(input.supply)) return fail('validation_failed', 'supply must be a positive whole number of tokens, as a string');
    const supply = BigInt(input.supply);
    if (supply > STANDARD_MAX_SUPPLY && who.role !== 'admin') return fail('forbidden_role', `supply above ${STANDARD_MAX_SUPPLY} tokens needs an admin`);
    const supplyMinor = supply * pow10(input.decimals);
    if (supplyMinor > MAX_SUPPLY_MINOR) return fail('validation_failed', 'supply is too large');
    const meta: { description: string | null; website: string | null; imageUrl: string | null } = { description: null, website: null, imageUrl: null };
    if (input.description !== undefined) {
      const d = validDescription(input.description);
      if (!d.ok) return d;
      meta.description = d.value || null;
    }
    for (const [field, what] of [['website', 'website'], ['imageUrl', 'imageUrl']] as const) {
      const v = input[field];
      if (v === undefined) continue;
      const u = validHttpsUrl(v, what);
      if (!u.ok) return u;
      meta[field] = u.value;
    }
    if (RESERVED_SYMBOLS.has(input.symbol)) return fail('conflict', `symbol ${input.symbol} is reserved`);
    const chain: Chain = input.chain ?? 'evm';

    return ledger.run<{ token: Token; market: Market }, 'validation_failed' | 'conflict' | 'token_creation_limit_exceeded'>(async (l, trx) => {
      const now = l.now;
      await lockAccount(store, trx, who.accountId);
      const recent = await trx.selectFrom('tokens').select((eb) => eb.fn.countAll<number>().as('n')).where('created_by', '=', who.accountId).where('created_at', '>', now - DAY).executeTakeFirstOrThrow();
      if (Number(recent.n) >= config.dailyCreations) {
        return fail('token_creation_limit_exceeded', `An account may launch at most ${config.dailyCreations} tokens per 24 h`);
      }
      const asset = await assets.createAsset({ symbol: input.symbol, name: name.value, decimals: input.decimals }, who.accountId, trx);
      if (!asset.ok) return asset.code === 'conflict' ? fail('conflict', `symbol ${input.symbol} is already taken`) : asset;
      const market = await assets.listMarket({ base: input.symbol, quote: USDC, ...defaultMarketTerms(input.decimals) }, trx);
      if (!market.ok) return market;
      const row: TokensTable = {
        symbol: input.symbol,
        name: name.value,
        chain,
        supply: supplyMinor.toString(),
        description: meta.description,
        website: meta.website,
        image_url: meta.imageUrl,
        created_by: who.accountId,
        created_at: now,
        updated_at: now,
      };
      await trx.insertInto('tokens').values(row).execute();
      const posted = await l.post('token.issue', input.symbol, [
        { owner: SYSTEM_OWNERS.issuance, asset: input.symbol, amount: -supplyMinor },
        { owner: who.accountId, asset: input.symbol, amount: supplyMinor },
      ]);
      if (!posted.ok) throw new Error(posted.detail); // the issuance account may go negative: a bug if not
      await l.flush(); // balance rows before the audit chain head (see Ledger.run)
      await audit.recordIn(trx, {
        type: 'trading.token.created',
        accountId: who.accountId,
        actorId: who.accountId,
        details: { symbol: input.symbol, name: name.value, decimals: input.decimals, supply: input.supply, chain, market: market.value.symbol, ...via(who.actor) },
      });
      return ok({ token: this.toToken(row, input.decimals), market: market.value });
    });
  }

  async update(who: TokenActor, symbol: string, patch: TokenPatch): Promise<Result<Token, 'validation_failed' | 'not_found' | 'not_token_creator'>> {
    const { ledger, audit, store } = this.deps;
    const next: Partial<Pick<TokensTable, 'name' | 'description' | 'website' | 'image_url'>> = {};
    if (patch.name !== undefined) {
      const n = validName(patch.name);
      if (!n.ok) return n;
      next.name = n.value;
    }
    if (patch.description !== undefined) {
      if (patch.description === null) next.description = null;
      else {
        const d = validDescription(patch.description);
        if (!d.ok) return d;
        next.description = d.value || null;
      }
    }
    for (const [field, column] of [['website', 'website'], ['imageUrl', 'image_url']] as const) {
      const v = patch[field];
      if (v === undefined) continue;
      if (v === null) {
        next[column] = null;
        continue;
      }
      const u = validHttpsUrl(v, field);
      if (!u.ok) return u;
      next[column] = u.value;
    }
    if (Object.keys(next).length === 0) return fail('validation_failed', 'nothing to change: send name, description, website or imageUrl');

    return ledger.run<Token, 'not_found' | 'not_token_creator'>(async (l, trx) => {
      let q = trx.selectFrom('tokens').selectAll().where('symbol', '=', symbol);
      if (store.dialect === 'postgres') q = q.forUpdate();
      const row = await q.executeTakeFirst();
      if (!row) return fail('not_found', 'No such token');
      if (row.created_by !== who.accountId) return fail('not_token_creator', 'Only the account that launched this token may change it');
      const changed = (Object.keys(next) as (keyof typeof next)[]).filter((k) => next[k] !== row[k]);
      const decimals = (await this.deps.assets.asset(symbol, trx))!.decimals;
      if (changed.length === 0) return ok(this.toToken(row, decimals));
      const updated = { ...row, ...next, updated_at: l.now };
      await trx.updateTable('tokens').set({ ...next, updated_at: l.now }).where('symbol', '=', symbol).execute();
      await audit.recordIn(trx, {
        type: 'trading.token.updated',
        accountId: who.accountId,
        actorId: who.accountId,
        details: { symbol, changed: changed.map((c) => (c === 'image_url' ? 'imageUrl' : c)), ...via(who.actor) },
      });
      return ok(this.toToken(updated, decimals));
    });
  }

  async get(symbol: string, db: Executor = this.deps.store.db): Promise<Token | undefined> {
    if (!ASSET_SYMBOL.test(symbol)) return undefined;
    const row = await db.selectFrom('tokens').selectAll().where('symbol', '=', symbol).executeTakeFirst();
    if (!row) return undefined;
    const asset = await this.deps.assets.asset(symbol, db);
    return asset ? this.toToken(row, asset.decimals) : undefined;
  }

  /** Launched tokens, newest first, optionally only one creator's. */
  /**
   * Launched tokens, newest first (by symbol within one millisecond). `before` is the position of
   * the last token of the previous page (the route's `before` cursor): the list goes on after it.
   */
  async list(options: { createdBy?: string; limit?: number; before?: { createdAt: number; symbol: string } } = {}): Promise<Token[]> {
    let q = this.deps.store.db.selectFrom('tokens').selectAll().orderBy('created_at', 'desc').orderBy('symbol').limit(options.limit ?? 100);
    if (options.createdBy) q = q.where('created_by', '=', options.createdBy);
    const before = options.before;
    if (before) q = q.where((eb) => eb.or([eb('created_at', '<', before.createdAt), eb.and([eb('created_at', '=', before.createdAt), eb('symbol', '>', before.symbol)])]));
    const rows = await q.execute();
    const out: Token[] = [];
    for (const r of rows) {
      const asset = await this.deps.assets.asset(r.symbol);
      if (asset) out.push(this.toToken(r, asset.decimals));
    }
    return out;
  }

  /** The chain an asset withdraws to: a launched token's own; USDC and admin-created assets are EVM. */
  async chainOf(symbol: string, db: Executor = this.deps.store.db): Promise<Chain> {
    const row = await db.selectFrom('tokens').select('chain').where('symbol', '=', symbol).executeTakeFirst();
    return row?.chain === 'solana' ? 'solana' : 'evm';
  }

  private toToken(row: TokensTable, decimals: number): Token {
    return {
      symbol: row.symbol,
      name: row.name,
      decimals,
      chain: row.chain === 'solana' ? 'solana' : 'evm',
      supply: readMinor(row.supply),
      description: row.description,
      website: row.website,
      imageUrl: row.image_url,
      market: `${row.symbol}-${USDC}`,
      createdBy: row.created_by,
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
    };
  }
}

export function tokenView(t: Token) {
  return {
    symbol: t.symbol,
    name: t.name,
    decimals: t.decimals,
    chain: t.chain,
    supply: formatAmount(t.supply, t.decimals),
    description: t.description,
    website: t.website,
    imageUrl: t.imageUrl,
    market: t.market,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
  };
}
