import { createHmac, timingSafeEqual } from 'node:crypto';
import { base58 } from '@scure/base';
import type { Chain } from '../../accounts/wallets.js';
import { secureRandomBytes } from '../../lib/random.js';
import type { SharedState } from '../../state/port.js';
import type { Keyring } from '../crypto/keyring.js';
import { ReplayGuard } from '../replay/index.js';

/** A sign-in nonce lives this long, and a message issued longer ago is refused. */
export const NONCE_TTL_MS = 5 * 60_000;

/**
 * How much processes' clocks may differ: a redeemed nonce is remembered this much longer than it
 * lives, and a nonce that claims to live longer than NONCE_TTL_MS by more than this is not ours.
 */
const CLOCK_SLACK_MS = 60_000;

/** How long a redeemed nonce is remembered: for as long as any process could still accept it. */
export const REDEEMED_TTL_MS = NONCE_TTL_MS + CLOCK_SLACK_MS;

/** The once-only memory (shared state `firstSeen` space) of redeemed nonces. */
export const REDEEMED_SPACE = 'signin-nonce';

/** What the MAC key is derived for (Keyring.deriveKey). */
const MAC_PURPOSE = 'signin-nonce-mac';

// The nonce's bytes: random | master-key version | expiry (epoch ms) | MAC of those and the binding.
const RANDOM_BYTES = 16;
const VERSION_BYTES = 3; // master key versions go up to 999999
const EXPIRY_BYTES = 6; // epoch ms fit in 48 bits until the year 10889
const MAC_BYTES = 16;
const SIGNED_BYTES = RANDOM_BYTES + VERSION_BYTES + EXPIRY_BYTES;
const NONCE_BYTES = SIGNED_BYTES + MAC_BYTES;
/** base58 of NONCE_BYTES is 41 to 56 characters: within SIWS's 8 to 64 letters and digits. */
const NONCE_SHAPE = /^[1-9A-HJ-NP-Za-km-z]{8,64}$/;

/** A nonce that passed every check that needs no I/O. */
export interface CheckedNonce {
  /** Names the nonce in the memory of redeemed ones (its random part, in hex). */
  id: string;
  issuedAt: number;
}

export type NonceRefusal = { reason: 'nonce_unknown' | 'nonce_mismatch' | 'nonce_expired' | 'nonce_before_memory' | 'nonce_used'; detail: string };

const refusals = {
  nonce_unknown: 'The nonce is not one this server issued; request a new challenge',
  nonce_mismatch: 'The nonce was not issued by this server for this wallet on this chain (it is another wallet’s, or was altered); request a new challenge',
  nonce_expired: 'The nonce has expired; request a new challenge',
  nonce_before_memory: 'The nonce was issued before this server’s memory of used nonces began (a restart of the server or of its shared state); request a new challenge',
  nonce_used: 'The nonce was already used; request a new challenge',
} as const;

const refuse = (reason: NonceRefusal['reason']): { ok: false } & NonceRefusal => ({ ok: false, reason, detail: refusals[reason] });

/**
 * Sign-in nonces that cost no stored state until they are redeemed: a challenge nobody signs
 * leaves nothing behind, so anonymous challenges cannot fill shared state however many addresses
 * ask for them. A nonce is base58 of
 *
 *   16 random bytes | master key version (3) | expiry, epoch ms (6) | HMAC-SHA256 (first 16 bytes)
 *
 * where the MAC, keyed by a key every process derives from the master key (Keyring.deriveKey),
 * covers the bytes before it, the chain and the canonical wallet. So a nonce is bound to the
 * wallet and chain it was issued for, and to its expiry, and none can be made without the master
 * key. It is redeemed once: its random part is recorded in the shared once-only memory
 * (`firstSeenHeld`, atomic across processes) when a login with it succeeds, and remembered for
 * longer than the nonce lives. That memory, like the replay memory of signed requests, vouches only
 * for nonces issued since it began: after a restart of the embedded server, or of an unpersisted
 * Redis, nonces issued before are refused (as they were when nonces lived in that memory).
 */
export class SignInNonces {
  private readonly macKeys = new Map<number, Buffer>();
  private readonly redeemed: ReplayGuard;

  /**
   * @param began When the memory of redeemed nonces began (see ReplayGuard): `since` for nonces
   * issued before it, `held` the shared-state marker's value at start-up.
   */
  constructor(
    private readonly keyring: Keyring,
    state: SharedState,
    began: { since?: number | undefined; held?: number | undefined } = {},
  ) {
    this.redeemed = new ReplayGuard(state, began.since, began.held, { space: REDEEMED_SPACE, ttlMs: REDEEMED_TTL_MS });
  }

  /** A nonce for `wallet` (canonical spelling) on `chain`, valid until `expiresAt`. No I/O. */
  issue(chain: Chain, wallet: string, expiresAt: number): string {
    const version = this.keyring.activeVersion;
    const bytes = Buffer.alloc(NONCE_BYTES);
    secureRandomBytes(RANDOM_BYTES).copy(bytes, 0);
    bytes.writeUIntBE(version, RANDOM_BYTES, VERSION_BYTES);
    bytes.writeUIntBE(expiresAt, RANDOM_BYTES + VERSION_BYTES, EXPIRY_BYTES);
    this.mac(this.macKey(version)!, bytes, chain, wallet).copy(bytes, SIGNED_BYTES);
    return base58.encode(bytes);
  }

  /**
   * Whether `nonce` is one this server issued for `wallet` (canonical) on `chain`, unexpired at
   * `now`, and one the memory of redeemed nonces can vouch for. No I/O: check before verifying the
   * signature, redeem after.
   */
  check(nonce: string, chain: Chain, wallet: string, now: number): ({ ok: true } & CheckedNonce) | ({ ok: false } & NonceRefusal) {
    if (!NONCE_SHAPE.test(nonce)) return refuse('nonce_unknown');
    let bytes: Uint8Array;
    try {
      bytes = base58.decode(nonce);
    } catch {
      return refuse('nonce_unknown');
    }
    // One spelling per nonce: the redeemed memory names it by its bytes, its checks by its text.
    if (bytes.length !== NONCE_BYTES || base58.encode(bytes) !== nonce) return refuse('nonce_unknown');
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const key = this.macKey(buf.readUIntBE(RANDOM_BYTES, VERSION_BYTES));
    if (!key) return refuse('nonce_unknown');
    if (!timingSafeEqual(this.mac(key, buf, chain, wallet), buf.subarray(SIGNED_BYTES))) return refuse('nonce_mismatch');
    const expiresAt = buf.readUIntBE(RANDOM_BYTES + VERSION_BYTES, EXPIRY_BYTES);
    if (expiresAt <= now) return refuse('nonce_expired');
    // Only a process whose clock runs far ahead issues such a nonce: it would outlive its memory.
    if (expiresAt > now + NONCE_TTL_MS + CLOCK_SLACK_MS) return refuse('nonce_unknown');
    const issuedAt = expiresAt - NONCE_TTL_MS;
    if (!this.redeemed.covers(issuedAt, 0)) return refuse('nonce_before_memory');
    return { ok: true, id: buf.toString('hex', 0, RANDOM_BYTES), issuedAt };
  }

  /**
   * Redeems a checked nonce, once across every process sharing the state: refused when it was
   * redeemed before, or when the memory turns out to have been lost since it was issued. Rejects
   * with StateUnavailableError while shared state does not answer (the caller fails closed).
   */
  async redeem(nonce: CheckedNonce, now: number): Promise<{ ok: true } | ({ ok: false } & NonceRefusal)> {
    const first = await this.redeemed.once(nonce.id, now);
    // This very call may be the first to meet a loss of shared state (see ReplayGuard.once).
    if (!this.redeemed.covers(nonce.issuedAt, 0)) return refuse('nonce_before_memory');
    return first ? { ok: true } : refuse('nonce_used');
  }

  /** Shared state lost what it held (see ReplayGuard.lostBefore). */
  lostBefore(at: number, intactAt?: number): Promise<void> {
    return this.redeemed.lostBefore(at, intactAt);
  }

  /** The MAC key of a master key version; cached for the keyring's versions only (the version read from a nonce is anyone's). */
  private macKey(version: number): Buffer | undefined {
    let key = this.macKeys.get(version);
    if (!key && this.keyring.has(version)) {
      key = this.keyring.deriveKey(MAC_PURPOSE, version)!;
      this.macKeys.set(version, key);
    }
    return key;
  }

  private mac(key: Buffer, bytes: Buffer, chain: Chain, wallet: string): Buffer {
    // The signed bytes have a fixed length and a chain name holds no NUL: the input is unambiguous.
    return createHmac('sha256', key).update(bytes.subarray(0, SIGNED_BYTES)).update(`${chain}\0${wallet}`, 'utf8').digest().subarray(0, MAC_BYTES);
  }
}
