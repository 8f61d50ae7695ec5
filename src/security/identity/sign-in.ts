import { isAddress } from 'viem';
import { toAccount, type Account, type Accounts } from '../../accounts/accounts.js';
import { canonicalWallet, chainOf, type Chain } from '../../accounts/wallets.js';
import type { Config } from '../../config/index.js';
import { fail, ok, type Result } from '../../errors/registry.js';
import type { Clock } from '../../lib/clock.js';
import type { SecurityEvents } from '../events/index.js';
import type { AccessTokens } from './access-tokens.js';
import { NONCE_TTL_MS, type SignInNonces } from './nonces.js';
import type { ClientContext, SessionRow, Sessions } from './sessions.js';
import { MAX_MESSAGE_LENGTH, messageChain, PRINTABLE_ASCII_LINES, refuse, SIGN_IN_STATEMENT, type Parsed, type SignInFields, type SignInRefusal } from './sign-in-message.js';
import { checkEthereumSignatureShape, createEthereumChallenge, parseEthereumMessage, passesSiweValidation, verifyEthereumSignature } from './siwe.js';
import { createSolanaMessage, decodeSolanaSignature, parseSolanaMessage, solanaPublicKey, verifySolanaSignature } from './siws.js';

export interface Challenge {
  message: string;
  nonce: string;
  /** Epoch ms from which the nonce is refused. */
  expiresAt: number;
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  tokenType: 'Bearer';
  /** Seconds. */
  expiresIn: number;
  sessionId: string;
  account: { id: string; wallet: string; chain: Chain; role: string };
}

/** A login's verdict; a refusal names the wallet when the message got far enough to say. */
type Checked = { ok: true; value: { chain: Chain; address: string } } | ({ ok: false; wallet?: string } & SignInRefusal);

/**
 * Wallet sign-in: challenge → the wallet signs → login, and refresh. Every refusal of a login is
 * `invalid_credentials` (401) with a `signin.failed` security event naming the reason; the message
 * and signature are never trusted before every check below has passed:
 *
 *   shape (printable ASCII, bounded) → format (canonical EIP-4361 / SIWS) → this server's domain,
 *   URI and chain id → issued within the nonce lifetime, not expired, not before its time →
 *   the signature's shape → the nonce: issued by this server for this very wallet and chain,
 *   unexpired (a MAC, no I/O) → the signature verified against that wallet → the nonce redeemed,
 *   once across every process. Nothing is stored for a challenge until a login with it succeeds
 *   (see SignInNonces), so neither challenges nor failed logins grow shared state, and nobody but
 *   the wallet's holder can spend its nonce.
 */
export class SignIn {
  constructor(
    private readonly deps: {
      config: Config;
      clock: Clock;
      nonces: SignInNonces;
      accounts: Accounts;
      sessions: Sessions;
      accessTokens: AccessTokens;
      events: SecurityEvents;
    },
  ) {}

  async challenge(address: string, chain: Chain): Promise<Result<Challenge, 'validation_failed' | 'service_unavailable'>> {
    const { config, clock, nonces } = this.deps;
    // EIP-55: an all-lowercase or all-uppercase address carries no checksum; a mixed-case one must match it.
    const ethereumOk = isAddress(address, { strict: true }) || /^0x[0-9A-F]{40}$/.test(address);
    if (chainOf(address) !== chain || (chain === 'ethereum' && !ethereumOk) || (chain === 'solana' && !solanaPublicKey(address))) {
      return fail('validation_failed', chain === 'ethereum' ? 'address must be a 0x Ethereum address (a mixed-case one must have a valid EIP-55 checksum)' : 'address must be a base58 Solana public key');
    }
    const now = clock.now();
    const issuedAt = new Date(now);
    const expiresAt = now + NONCE_TTL_MS;
    const nonce = nonces.issue(chain, canonicalWallet(address), expiresAt);
    let message: string;
    try {
      message =
        chain === 'ethereum'
          ? createEthereumChallenge({ address, domain: config.domain, uri: config.publicUrl, chainId: config.signIn.ethereumChainId, nonce, issuedAt, expirationTime: new Date(expiresAt) })
          : createSolanaMessage({
              domain: config.domain,
              address,
              statement: SIGN_IN_STATEMENT,
              uri: config.publicUrl,
              version: '1',
              chainId: config.signIn.solanaChainId,
              nonce,
              issuedAt: issuedAt.toISOString(),
              expirationTime: new Date(expiresAt).toISOString(),
            });
    } catch {
      // viem refuses a host it cannot put in EIP-4361 (an IPv6 literal, say): a deployment problem.
      return fail('service_unavailable', 'This server cannot issue sign-in messages for its public URL; set MOONDRAFT_PUBLIC_URL to a host name');
    }
    return ok({ message, nonce, expiresAt });
  }

  async login(message: string, signature: string, client: ClientContext): Promise<Result<TokenPair, 'invalid_credentials'>> {
    const checked = await this.check(message, signature);
    if (!checked.ok) {
      this.deps.events.emit({ type: 'signin.failed', reason: checked.reason, wallet: checked.wallet, at: this.deps.clock.now(), ip: client.ip, userAgent: client.userAgent, requestId: client.requestId });
      return fail('invalid_credentials', checked.detail);
    }
    const { chain, address } = checked.value;
    const account = await this.deps.accounts.findOrCreate(address);
    if (!account.ok) return fail('invalid_credentials', account.detail);
    const now = this.deps.clock.now();
    const { session, refreshToken } = await this.deps.sessions.start({ accountId: account.value.id, chain, authTimeMs: now, client });
    const pair = await this.tokens(account.value, session, refreshToken);
    this.deps.events.emit({ type: 'signin.succeeded', sessionId: session.id, chain, wallet: account.value.wallet, at: now, accountId: account.value.id, ip: client.ip, userAgent: client.userAgent, requestId: client.requestId });
    return ok(pair);
  }

  async refresh(refreshToken: string, client: ClientContext): Promise<Result<TokenPair, 'invalid_token' | 'token_expired' | 'token_revoked' | 'refresh_token_reused'>> {
    const rotated = await this.deps.sessions.rotate(refreshToken, client);
    if (!rotated.ok) return rotated;
    const { session } = rotated.value;
    if (!rotated.value.account) return fail('invalid_token', 'The account of this session no longer exists');
    const account = toAccount(rotated.value.account);
    const pair = await this.tokens(account, session, rotated.value.refreshToken);
    this.deps.events.emit({ type: 'token.refreshed', sessionId: session.id, at: this.deps.clock.now(), accountId: account.id, ip: client.ip, userAgent: client.userAgent, requestId: client.requestId });
    return ok(pair);
  }

  private async tokens(account: Account, session: SessionRow, refreshToken: string): Promise<TokenPair> {
    const { token, claims } = await this.deps.accessTokens.issue({
      accountId: account.id,
      wallet: account.wallet,
      role: account.role,
      sessionId: session.id,
      authTime: Math.floor(Number(session.auth_time) / 1000),
      // A session ends at its absolute expiry "at the latest": its last access token with it.
      notAfter: Number(session.refresh_expires_at),
    });
    return {
      accessToken: token,
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: claims.exp - claims.iat,
      sessionId: session.id,
      account: { id: account.id, wallet: account.wallet, chain: account.chain, role: account.role },
    };
  }

  private async check(message: string, signature: string): Promise<Checked> {
    if (message.length > MAX_MESSAGE_LENGTH || !PRINTABLE_ASCII_LINES.test(message)) {
      return refuse('message_malformed', 'The message must be printable ASCII lines separated by \\n');
    }
    const chain = messageChain(message);
    if (!chain) return refuse('message_unparsable', 'The message is neither an EIP-4361 (Ethereum) nor a Sign-In-With-Solana message');
    const parsed = chain === 'ethereum' ? parseEthereumMessage(message) : parseSolanaMessage(message);
    if (!parsed.ok) return parsed;
    const fields = parsed.value;
    const wallet = canonicalWallet(fields.address);
    const bound = this.checkBinding(fields);
    if (!bound.ok) return { ...bound, wallet };

    const shape = chain === 'ethereum' ? checkEthereumSignatureShape(signature) : decodeSolanaSignature(signature);
    if (!shape.ok) return { ...shape, wallet };

    const nonce = this.deps.nonces.check(fields.nonce, chain, wallet, this.deps.clock.now());
    if (!nonce.ok) return { ...nonce, wallet };

    const verified = chain === 'ethereum' ? await verifyEthereumSignature(message, fields.address, signature) : verifySolanaSignature(message, fields.address, signature);
    if (!verified.ok) return { ...verified, wallet };
    // Only the wallet's own signature spends its nonce: once, however many processes race for it.
    const redeemed = await this.deps.nonces.redeem(nonce, this.deps.clock.now());
    if (!redeemed.ok) return { ...redeemed, wallet };
    return { ok: true, value: { chain, address: fields.address } };
  }

  /** The message must be meant for this server, now. */
  private checkBinding(fields: SignInFields): Parsed<true> {
    const { config, clock } = this.deps;
    const now = clock.now();
    const toleranceMs = config.jwt.clockToleranceSec * 1000;
    if (fields.domain !== config.domain) return refuse('domain_mismatch', `The message is for another domain; this server is ${config.domain}`);
    const scheme = new URL(config.publicUrl).protocol.slice(0, -1);
    if (fields.scheme !== undefined && fields.scheme !== scheme) return refuse('scheme_mismatch', `The message names another scheme; this server uses ${scheme}`);
    if (fields.uri !== config.publicUrl) return refuse('uri_mismatch', `The message URI must be ${config.publicUrl}`);
    if (fields.version !== '1') return refuse('version_unsupported', 'The message version must be 1');
    const chainIds = fields.chain === 'ethereum' ? [String(config.signIn.ethereumChainId)] : [config.signIn.solanaChainId, `solana:${config.signIn.solanaChainId}`];
    if (!chainIds.includes(fields.chainId)) return refuse('chain_mismatch', `The message must name chain id ${chainIds[0]}`);
    const issuedAt = fields.issuedAt.getTime();
    if (issuedAt > now + toleranceMs) return refuse('issued_in_future', 'The message is issued in the future; check the clock (GET /api/v1/time)');
    if (issuedAt < now - NONCE_TTL_MS - toleranceMs) return refuse('message_too_old', 'The message was issued too long ago; request a new challenge');
    if (fields.expirationTime && fields.expirationTime.getTime() <= now) return refuse('message_expired', 'The message has expired; request a new challenge');
    if (fields.notBefore && fields.notBefore.getTime() > now) return refuse('message_not_yet_valid', 'The message is not valid yet (Not Before)');
    if (fields.chain === 'ethereum' && !passesSiweValidation(fields, config.domain, new Date(now))) {
      return refuse('message_invalid', 'The EIP-4361 message is not valid');
    }
    return { ok: true, value: true };
  }
}
