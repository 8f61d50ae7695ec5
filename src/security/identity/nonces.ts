import { randomBytes } from 'node:crypto';
import type { Chain } from '../../accounts/wallets.js';
import type { SharedState } from '../../state/port.js';

/** A sign-in nonce lives this long, and a message issued longer ago is refused. */
export const NONCE_TTL_MS = 5 * 60_000;

const key = (nonce: string) => `signin:nonce:${nonce}`;

/**
 * Sign-in nonces in shared state, so that any process may redeem what another issued. Each is
 * bound to the wallet (and chain) it was issued for and is taken atomically: it works once.
 */
export class SignInNonces {
  constructor(private readonly state: SharedState) {}

  /** 128 random bits as 32 hex characters (EIP-4361 wants at least 8 alphanumerics). */
  async issue(chain: Chain, wallet: string): Promise<string> {
    const nonce = randomBytes(16).toString('hex');
    await this.state.set(key(nonce), JSON.stringify({ chain, wallet }), NONCE_TTL_MS);
    return nonce;
  }

  /** The binding of a nonce, removing it; null when unknown, expired or already used. */
  async take(nonce: string): Promise<{ chain: Chain; wallet: string } | null> {
    const raw = await this.state.take(key(nonce));
    return raw === null ? null : (JSON.parse(raw) as { chain: Chain; wallet: string });
  }
}
