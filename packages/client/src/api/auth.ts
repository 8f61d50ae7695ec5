import { parseSiweMessage } from 'viem/siwe';
import { MoondraftError } from '../errors.js';
import type { CallOptions, Requester } from '../core/requester.js';
import type { Session, SessionStore, TokenPair } from '../session/session.js';
import type { Chain, EpochMs } from './common.js';

export interface ChallengeRequest {
  address: string;
  chain: Chain;
}

export interface Challenge {
  /** For ethereum, a complete EIP-4361 message bound to the server's domain: sign it as is. */
  message: string;
  nonce: string;
  /** When the nonce expires (epoch ms, 5 minutes after issue). */
  expiresAt: EpochMs;
}

export interface LoginRequest {
  message: string;
  signature: string;
}

/** What signs the sign-in message: a viem `LocalAccount` (e.g. `privateKeyToAccount(…)`) fits. */
export interface EthereumSigner {
  address: `0x${string}`;
  signMessage(args: { message: string }): Promise<`0x${string}`>;
}

export interface SignInOptions extends CallOptions {
  /**
   * The EIP-4361 `domain` the message must name before it is signed (default: the host of `baseUrl`).
   * Signing a message for another domain would hand a sign-in for that site to whoever runs this one.
   * Set it when the server's public URL differs from `baseUrl` (a proxy); `false` skips the check.
   */
  expectedDomain?: string | false;
}

/** Wallet sign-in and session tokens (API.md "Wallet sign-in → JWT"). */
export class AuthApi {
  readonly #requester: Requester;
  readonly #session: SessionStore;
  readonly #baseUrl: URL;

  constructor(requester: Requester, session: SessionStore, baseUrl: URL) {
    this.#requester = requester;
    this.#session = session;
    this.#baseUrl = baseUrl;
  }

  /** `POST /api/v1/auth/challenge`: a single-use nonce and the message to sign. */
  challenge(request: ChallengeRequest, options?: CallOptions): Promise<Challenge> {
    return this.#requester.call({ method: 'POST', path: '/api/v1/auth/challenge', body: request, auth: 'none', options });
  }

  /** `POST /api/v1/auth/login`: exchanges a signed challenge for tokens, which this client then uses. */
  async login(request: LoginRequest, options?: CallOptions): Promise<TokenPair> {
    const pair = await this.#requester.call<TokenPair>({ method: 'POST', path: '/api/v1/auth/login', body: request, auth: 'none', options });
    this.#session.adopt(pair);
    return pair;
  }

  /**
   * Sign-In with Ethereum: challenge → check the message → `account.signMessage` → login. The client
   * then refreshes its access token by itself before it expires.
   *
   * @example
   * import { privateKeyToAccount } from 'viem/accounts';
   * await client.signIn(privateKeyToAccount(process.env.WALLET_KEY as `0x${string}`));
   */
  async signIn(account: EthereumSigner, options: SignInOptions = {}): Promise<Session> {
    const { expectedDomain, ...callOptions } = options;
    const challenge = await this.challenge({ address: account.address, chain: 'ethereum' }, callOptions);
    this.checkChallenge(challenge, account.address, expectedDomain === undefined ? this.#baseUrl.host : expectedDomain);
    const signature = await account.signMessage({ message: challenge.message });
    await this.login({ message: challenge.message, signature }, callOptions);
    return this.#session.current!;
  }

  /** `POST /api/v1/auth/refresh` now, rotating the refresh token (concurrent callers share one refresh). */
  refresh(): Promise<Session> {
    return this.#session.refresh((token) => this.#requester.exchangeRefreshToken(token), { method: 'POST', path: '/api/v1/auth/refresh' });
  }

  /** `POST /api/v1/auth/logout`: revokes the session on the server, then forgets it here. */
  async logout(options?: CallOptions): Promise<void> {
    try {
      await this.#requester.call({ method: 'POST', path: '/api/v1/auth/logout', auth: 'session', idempotent: true, answer: 'any', options });
    } catch (error) {
      // Already over on the server (e.g. a retry after a lost answer): the goal is reached.
      const over = error instanceof MoondraftError && ['token_revoked', 'invalid_token', 'refresh_token_reused', 'session_unavailable'].includes(error.code);
      if (!over) throw error;
    }
    this.#session.clear();
  }

  private checkChallenge(challenge: Challenge, address: string, expectedDomain: string | false): void {
    const fail = (detail: string) =>
      new MoondraftError({ code: 'challenge_mismatch', status: 0, detail: `${detail}; the message was not signed`, method: 'POST', path: '/api/v1/auth/challenge' });
    let fields: ReturnType<typeof parseSiweMessage>;
    try {
      fields = parseSiweMessage(challenge.message);
    } catch {
      throw fail('The challenge is not an EIP-4361 message');
    }
    if (!fields.address || fields.address.toLowerCase() !== address.toLowerCase()) throw fail(`The message names address ${fields.address ?? '(none)'}, not ${address}`);
    if (!fields.nonce || fields.nonce !== challenge.nonce) throw fail('The message nonce differs from the challenge nonce');
    if (expectedDomain !== false && fields.domain !== expectedDomain) {
      throw fail(`The message is for domain ${JSON.stringify(fields.domain)}, not ${JSON.stringify(expectedDomain)} (set signIn's expectedDomain if the server is published under another host)`);
    }
    // The URI names the server the sign-in is for; one on another host than the domain would sign
    // the wallet in somewhere else than the page says.
    let uriHost: string | undefined;
    try {
      uriHost = fields.uri ? new URL(fields.uri).host : undefined;
    } catch {
      uriHost = undefined;
    }
    if (expectedDomain !== false && uriHost !== fields.domain) throw fail(`The message URI ${JSON.stringify(fields.uri ?? null)} is not on its domain ${JSON.stringify(fields.domain)}`);
  }
}
