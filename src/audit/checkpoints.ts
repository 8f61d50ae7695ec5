import { calculateJwkThumbprint, CompactSign, compactVerify, type JWK } from 'jose';
import type { Kysely, Transaction } from 'kysely';
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { newId } from '../lib/ids.js';
import type { SigningKeys } from '../security/identity/signing-keys.js';
import type { AuditCheckpointsTable, Database } from '../store/schema.js';

/**
 * Signed checkpoints: "record `seq` has hash `hash`", signed RS256 with the server's JWT signing
 * key (header `kid`, `typ` below, so a checkpoint can never pass as an access token nor a token as
 * a checkpoint). A periodic checkpoint fixes the chain up to its seq: rewriting the whole tail after
 * it needs the private key. An `anchor` checkpoint is left by a retention purge: it names the last
 * purged record, whose hash the first remaining record links to.
 *
 * Keys outlive the keyset. The JWT keyset drops a retired key an hour or so after rotation, but a
 * checkpoint must verify for the whole retention period. So every checkpoint also endorses, by RFC
 * 7638 thumbprint, each older key the server still trusts, and each signing key's public JWK is
 * stored in `audit_signing_keys`. Verification trusts the keys of the current keyset, plus the keys
 * endorsed by checkpoints those keys signed, and accepts a stored JWK only when its thumbprint is
 * endorsed: a key an attacker inserts is endorsed by nothing.
 */
export const CHECKPOINT_TYP = 'moondraft-audit-checkpoint+jws';

export type CheckpointKind = 'periodic' | 'anchor';

export interface CheckpointPayload {
  v: 1;
  kind: CheckpointKind;
  seq: number;
  hash: string;
  at: number;
  /** Older signing keys this signer vouches for. */
  keys: { kid: string; jkt: string }[];
}

export interface VerifiedCheckpoint {
  id: string;
  kid: string;
  kind: CheckpointKind;
  seq: number;
  hash: string;
  at: number;
}

export interface CheckpointProblem {
  id: string;
  seq: number;
  why: string;
}

type Db = Kysely<Database> | Transaction<Database>;

interface KnownKey {
  jkt: string;
  key: KeyObject | JWK;
}

const PAGE = 500;

export class Checkpoints {
  /**
   * @param onSigned called with each new checkpoint; the server logs it, so a copy of every signed
   *   statement also lives outside the database (an attacker who deletes checkpoints from the store
   *   cannot delete them from the log pipeline).
   */
  constructor(
    private readonly signingKeys: SigningKeys,
    private readonly onSigned: (checkpoint: VerifiedCheckpoint) => void = () => {},
  ) {}

  /**
   * Keys of the current keyset file, with their thumbprints: retired ones too, even after their
   * tokens have expired (they left JWKS), so that a checkpoint they signed still verifies when no
   * newer key signed one before they left (a long checkpoint interval, a server stopped across a
   * rotation). A key leaves the file at the next rotation, by then endorsed by newer checkpoints.
   */
  private async keysetKeys(_now: number): Promise<Map<string, KnownKey & { jwk: JWK }>> {
    const out = new Map<string, KnownKey & { jwk: JWK }>();
    for (const { kid, publicKey, publicJwk } of this.signingKeys.held()) {
      out.set(kid, { jwk: publicJwk, jkt: await calculateJwkThumbprint(publicJwk, 'sha256'), key: publicKey });
    }
    return out;
  }

  /** Payload of a checkpoint row if its signature verifies with `key` and it matches its columns. */
  private async open(row: AuditCheckpointsTable, key: KeyObject | JWK): Promise<CheckpointPayload | string> {
    let payload: CheckpointPayload;
    try {
      const verified = await compactVerify(row.jws, key, { algorithms: ['RS256'] });
      if (verified.protectedHeader.typ !== CHECKPOINT_TYP || verified.protectedHeader.kid !== row.kid) return 'wrong header';
      payload = JSON.parse(new TextDecoder().decode(verified.payload)) as CheckpointPayload;
    } catch {
      return 'signature does not verify';
    }
    if (payload.v !== 1 || payload.seq !== Number(row.seq) || payload.hash !== row.hash || payload.kind !== row.kind || payload.at !== Number(row.at) || !Array.isArray(payload.keys)) {
      return 'stored columns differ from the signed statement';
    }
    return payload;
  }

  /**
   * Endorsements the next checkpoint carries: the keyset keys plus what the most recent checkpoint
   * signed by a keyset key endorsed (each checkpoint endorses everything known before it).
   */
  private async currentTrust(db: Db, now: number): Promise<Map<string, string>> {
    const keyset = await this.keysetKeys(now);
    const trust = new Map<string, string>([...keyset].map(([kid, k]) => [kid, k.jkt]));
    if (keyset.size === 0) return trust;
    const recent = await db.selectFrom('audit_checkpoints').selectAll().where('kid', 'in', [...keyset.keys()]).orderBy('at', 'desc').orderBy('id', 'desc').limit(20).execute();
    for (const row of recent) {
      const opened = await this.open(row, keyset.get(row.kid)!.key);
      if (typeof opened === 'string') continue;
      for (const k of opened.keys) if (!trust.has(k.kid)) trust.set(k.kid, k.jkt);
      break;
    }
    return trust;
  }

  /**
   * Whether a stored checkpoint signed with the active key already states `seq` and `hash`: one
   * whose signature verifies, not merely a row that says so (a row anyone with write access to the
   * store could add, to stop new checkpoints from being signed).
   */
  async covered(db: Db, input: { seq: number; hash: string }, now: number): Promise<boolean> {
    const { kid } = this.signingKeys.active();
    const key = (await this.keysetKeys(now)).get(kid);
    if (!key) return false;
    const rows = await db.selectFrom('audit_checkpoints').selectAll().where('kind', '=', 'periodic').where('seq', '=', input.seq).where('hash', '=', input.hash).where('kid', '=', kid).limit(20).execute();
    for (const row of rows) if (typeof (await this.open(row, key.key)) !== 'string') return true;
    return false;
  }

  /** Signs and stores a checkpoint inside `trx` (the caller holds the chain head lock). */
  async signIn(trx: Transaction<Database>, input: { kind: CheckpointKind; seq: number; hash: string }, now: number): Promise<VerifiedCheckpoint> {
    const { kid, privateKey } = this.signingKeys.active();
    const trust = await this.currentTrust(trx, now);
    const own = (await this.keysetKeys(now)).get(kid);
    if (!own) throw new Error(`the active signing key ${kid} has no public key in the keyset`);
    await trx.insertInto('audit_signing_keys').values({ kid, jwk: JSON.stringify(own.jwk), jkt: own.jkt, first_used_at: now }).onConflict((oc) => oc.column('kid').doNothing()).execute();
    const payload: CheckpointPayload = {
      v: 1,
      kind: input.kind,
      seq: input.seq,
      hash: input.hash,
      at: now,
      keys: [...trust].filter(([k]) => k !== kid).map(([k, jkt]) => ({ kid: k, jkt })).sort((a, b) => a.kid.localeCompare(b.kid)),
    };
    const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'RS256', kid, typ: CHECKPOINT_TYP }).sign(privateKey);
    const id = newId('ackp', now);
    await trx.insertInto('audit_checkpoints').values({ id, seq: input.seq, hash: input.hash, at: now, kind: input.kind, kid, jws }).execute();
    const checkpoint = { id, kid, kind: input.kind, seq: input.seq, hash: input.hash, at: now };
    this.onSigned(checkpoint);
    return checkpoint;
  }

  private async *all(db: Db, kids?: string[]): AsyncGenerator<AuditCheckpointsTable> {
    let after = '';
    for (;;) {
      let q = db.selectFrom('audit_checkpoints').selectAll().where('id', '>', after).orderBy('id').limit(PAGE);
      if (kids) q = q.where('kid', 'in', kids);
      const rows = await q.execute();
      yield* rows;
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]!.id;
    }
  }

  /** Checks every stored checkpoint; returns the valid ones and the problems found. */
  async verifyAll(db: Db, now: number): Promise<{ valid: VerifiedCheckpoint[]; problems: CheckpointProblem[] }> {
    const keyset = await this.keysetKeys(now);
    // Pass 1: what the keyset keys vouch for.
    const endorsed = new Map<string, Set<string>>();
    if (keyset.size > 0) {
      for await (const row of this.all(db, [...keyset.keys()])) {
        const opened = await this.open(row, keyset.get(row.kid)!.key);
        if (typeof opened === 'string') continue;
        for (const k of opened.keys) {
          if (!endorsed.has(k.kid)) endorsed.set(k.kid, new Set());
          endorsed.get(k.kid)!.add(k.jkt);
        }
      }
    }
    // Stored public keys, accepted only with an endorsed thumbprint.
    const stored = new Map<string, KnownKey>();
    for (const k of await db.selectFrom('audit_signing_keys').selectAll().execute()) {
      if (keyset.has(k.kid)) continue;
      try {
        const jwk = JSON.parse(k.jwk) as JWK;
        const jkt = await calculateJwkThumbprint(jwk, 'sha256');
        if (endorsed.get(k.kid)?.has(jkt)) stored.set(k.kid, { jkt, key: createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }) });
      } catch {
        // an unparsable stored key verifies nothing
      }
    }
    // Pass 2: every checkpoint.
    const valid: VerifiedCheckpoint[] = [];
    const problems: CheckpointProblem[] = [];
    for await (const row of this.all(db)) {
      const known = keyset.get(row.kid) ?? stored.get(row.kid);
      if (!known) {
        problems.push({ id: row.id, seq: Number(row.seq), why: `signed by key ${row.kid}, which is neither in the keyset nor endorsed by a trusted checkpoint` });
        continue;
      }
      const opened = await this.open(row, known.key);
      if (typeof opened === 'string') {
        problems.push({ id: row.id, seq: Number(row.seq), why: opened });
        continue;
      }
      valid.push({ id: row.id, kid: row.kid, kind: opened.kind, seq: opened.seq, hash: opened.hash, at: opened.at });
    }
    return { valid, problems };
  }
}
