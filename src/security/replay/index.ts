import { RECV_WINDOW } from '../signing/canonical.js';
import type { SharedState } from '../../state/port.js';

/**
 * How long an accepted request is remembered. A signed request can be accepted from 1 s before its
 * timestamp until the largest receive window after it (the window header is not signed, so an
 * attacker may ask for the largest one); remembering it at least that long from acceptance means a
 * copy is refused by the replay memory for as long as the timestamp check would let it through.
 */
export const REPLAY_TTL_MS = RECV_WINDOW.maxMs + RECV_WINDOW.futureToleranceMs + 1_000;

/**
 * Replay memory in the shared-state port: set-if-absent with a fixed TTL, atomic across every
 * process sharing the state. Never an evicting cache: an entry leaves only when its TTL ends.
 */
export class ReplayGuard {
  /**
   * @param since When the memory began, for a memory that does not outlive this process (the
   * in-process state of the embedded server) while the store already held keys that a previous
   * process may have accepted requests for; undefined when the memory outlives processes (Redis).
   */
  constructor(
    private readonly state: SharedState,
    private readonly since?: number,
  ) {}

  /**
   * Whether this memory can vouch for a request signed at `timestamp` (epoch ms). A request may be
   * accepted from 1 s before its timestamp on, so one signed earlier than 1 s after the memory
   * began may have been accepted by the previous process, whose memory is gone: it is refused.
   */
  covers(timestamp: number): boolean {
    return this.since === undefined || timestamp - RECV_WINDOW.futureToleranceMs >= this.since;
  }

  /**
   * Records one accepted request; true the first time, false for every copy. `digest` identifies
   * the signed message (see signing/messageDigest), so it is the same for every copy however the
   * signature is spelled or whichever of a key's valid secrets signed it. `signer` names whose
   * signature it is (the key id for a key's HMAC secrets, `ed25519:<public key hex>` for an ed25519 key pair).
   */
  async firstUse(signer: string, digest: string): Promise<boolean> {
    return this.state.setIfAbsent(`replay:${signer}:${digest}`, '1', REPLAY_TTL_MS);
  }
}
