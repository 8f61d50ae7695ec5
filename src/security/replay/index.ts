import { RECV_WINDOW } from '../signing/canonical.js';
import { StateUnavailableError, type SharedState } from '../../state/port.js';

/**
 * How long an accepted request is remembered. A signed request can be accepted from 1 s before its
 * timestamp until the largest receive window after it (the window header is not signed, so an
 * attacker may ask for the largest one); remembering it at least that long from acceptance means a
 * copy is refused by the replay memory for as long as the timestamp check would let it through.
 */
export const REPLAY_TTL_MS = RECV_WINDOW.maxMs + RECV_WINDOW.futureToleranceMs + 1_000;

/** Present while shared state holds the replay memory the processes wrote (see ReplayGuard.heldSince). */
const HELD_KEY = 'replay:held';

/**
 * Replay memory in the shared-state port's once-only memory (`firstSeen`, in Redis a set-if-absent)
 * with a fixed TTL, atomic across every process sharing the state. Never an evicting cache: an
 * entry leaves only when its TTL ends.
 */
export class ReplayGuard {
  /**
   * @param since When the memory began, for a memory that does not outlive this process (the
   * in-process state of the embedded server) while the store already held keys that a previous
   * process may have accepted requests for; undefined when the memory outlives processes (Redis),
   * until it is found lost (see lostBefore).
   */
  constructor(
    private readonly state: SharedState,
    private since?: number,
    /**
     * The marker's value when this process began (ReplayGuard.heldSince), for a memory in shared
     * state; undefined: the first request's answer sets it.
     */
    private held?: number,
    /**
     * Where and for how long ids are remembered: the signed requests' replay memory by default;
     * another once-only memory (redeemed sign-in nonces) names its own space and TTL, and shares
     * the marker, since a loss of shared state loses every space at once.
     */
    private readonly memory: { space: string; ttlMs: number } = { space: 'replay', ttlMs: REPLAY_TTL_MS },
  ) {}

  /**
   * For a memory in shared state that outlives processes (Redis), at start-up: since when it holds
   * what the processes accepted. That is the time its marker names (set when the memory was first
   * used, or when a process found it lost); with no marker it restarted empty while no process
   * watched (or is new), and it holds nothing signed before `now`: the marker is set to that.
   */
  static async heldSince(state: SharedState, now: number): Promise<number> {
    try {
      const held = Number(await state.get(HELD_KEY));
      if (held > 0) return held;
      await state.set(HELD_KEY, String(now));
    } catch (err) {
      if (!(err instanceof StateUnavailableError)) throw err;
      // Unreachable now: it cannot vouch for anything signed before (and refuses until it answers).
    }
    return now;
  }

  /**
   * Shared state lost what it held (Redis restarted empty, failed over, flushed), the accepted
   * requests included, after `intactAt` (the security sync's previous pass) and by `at` (the pass
   * that found it): from then on the memory vouches only for requests signed after it began again,
   * as an in-process memory does after a restart. Never moves back.
   */
  async lostBefore(at: number, intactAt?: number): Promise<void> {
    // The first signed request that met the loss has set the marker already (firstUse): a marker
    // written after the memory was last seen intact names when the memory began again. Adopting it
    // (instead of writing `at` over it) keeps requests signed since then, which every process
    // vouches for, from being refused once more. Any other marker (none, or an older one that a
    // restore from a snapshot brought back) is replaced by `at`.
    let since = at;
    try {
      const held = Number(await this.state.get(HELD_KEY));
      if (intactAt !== undefined && held >= intactAt && held <= at) since = held;
      else await this.state.set(HELD_KEY, String(at));
    } catch {
      // Unreachable now: `at` stands, and the marker is written by the next request that meets it.
    }
    if (this.since === undefined || since > this.since) this.since = since;
    if (this.held === undefined || since > this.held) this.held = since;
  }

  /**
   * Whether this memory can vouch for a request signed at `timestamp` (epoch ms). A request may be
   * accepted from 1 s before its timestamp on, so one signed earlier than 1 s after the memory
   * began may have been accepted by the previous process, whose memory is gone: it is refused.
   * `earlyMs`: how long before `timestamp` what it dates may have been accepted (0 for a sign-in
   * nonce, which exists only from its issue on).
   */
  covers(timestamp: number, earlyMs: number = RECV_WINDOW.futureToleranceMs): boolean {
    return this.since === undefined || timestamp - earlyMs >= this.since;
  }

  /**
   * Records one accepted request; true the first time, false for every copy. `digest` identifies
   * the signed message (see signing/messageDigest), so it is the same for every copy however the
   * signature is spelled or whichever of a key's valid secrets signed it. `signer` names whose
   * signature it is (the key id for a key's HMAC secrets, `ed25519:<public key hex>` for an ed25519 key pair).
   */
  async firstUse(signer: string, digest: string, now: number): Promise<boolean> {
    return this.once(`${signer}:${digest}`, now);
  }

  /** Records `id` in this memory's space; true the first time, false while it is remembered. */
  async once(id: string, now: number): Promise<boolean> {
    const { first, heldSince } = await this.state.firstSeenHeld(this.memory.space, id, this.memory.ttlMs, HELD_KEY, now);
    // The marker moved on since this process last looked: the memory was lost (this very request
    // may be the first to meet the loss, which wrote the marker) and holds nothing from before it.
    // The caller asks `covers` again: a request signed before that is refused at once, not only
    // once the security sync's next pass notices the loss.
    if (this.held === undefined) this.held = heldSince;
    else if (heldSince > this.held) {
      this.held = heldSince;
      if (this.since === undefined || heldSince > this.since) this.since = heldSince;
    }
    return first;
  }
}
