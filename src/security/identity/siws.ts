import { ed25519 } from '@noble/curves/ed25519.js';
import { base58 } from '@scure/base';
import { refuse, REQUEST_ID, type Parsed, type SignInFields } from './sign-in-message.js';

/**
 * Sign-In-With-Solana messages: the text layout of the Solana wallet-standard `signIn` feature
 * (`createSignInMessageText`), which mirrors EIP-4361 with the word "Solana":
 *
 *   {domain} wants you to sign in with your Solana account:
 *   {address, base58 ed25519 public key}
 *
 *   {statement}                         (optional, one line, followed by an empty line)
 *
 *   URI: {uri}
 *   Version: 1
 *   Chain ID: {mainnet | devnet | testnet | localnet, or solana:<cluster>}
 *   Nonce: {nonce from /auth/challenge}
 *   Issued At: {ISO 8601}
 *   Expiration Time: {ISO 8601}         (optional)
 *   Not Before: {ISO 8601}              (optional)
 *   Request ID: {text}                  (optional)
 *   Resources:                          (optional, then one "- {uri}" line each)
 *
 * Lines end with "\n" only and there is no trailing newline. The wallet signs the UTF-8 bytes of
 * the text with ed25519; the login request carries the 64-byte signature in base58.
 */
export interface SolanaMessageFields {
  domain: string;
  address: string;
  statement?: string | undefined;
  uri: string;
  version: string;
  chainId: string;
  nonce: string;
  issuedAt: string;
  expirationTime?: string | undefined;
  notBefore?: string | undefined;
  requestId?: string | undefined;
  resources?: string[] | undefined;
}

const HEADER = ' wants you to sign in with your Solana account:';
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const NONCE = /^[a-zA-Z0-9]{8,64}$/;
const DOMAIN = /^[a-zA-Z0-9.-]+(:\d{1,5})?$/;

function isUri(value: string): boolean {
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:[\x21-\x7e]*$/.test(value)) return false;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

export function createSolanaMessage(f: SolanaMessageFields): string {
  let message = `${f.domain}${HEADER}\n${f.address}`;
  if (f.statement) message += `\n\n${f.statement}`;
  const fields = [`URI: ${f.uri}`, `Version: ${f.version}`, `Chain ID: ${f.chainId}`, `Nonce: ${f.nonce}`, `Issued At: ${f.issuedAt}`];
  if (f.expirationTime) fields.push(`Expiration Time: ${f.expirationTime}`);
  if (f.notBefore) fields.push(`Not Before: ${f.notBefore}`);
  if (f.requestId) fields.push(`Request ID: ${f.requestId}`);
  if (f.resources) fields.push('Resources:', ...f.resources.map((r) => `- ${r}`));
  return `${message}\n\n${fields.join('\n')}`;
}

/** 32-byte ed25519 public key from a base58 address, or undefined. */
export function solanaPublicKey(address: string): Uint8Array | undefined {
  if (!/^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(address)) return undefined;
  try {
    const bytes = base58.decode(address);
    return bytes.length === 32 ? bytes : undefined;
  } catch {
    return undefined;
  }
}

function date(value: string | undefined): Date | undefined | null {
  if (value === undefined) return undefined;
  if (!DATE_TIME.test(value)) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Parses a SIWS message; accepted only when it is exactly the rendering of the fields parsed. */
export function parseSolanaMessage(message: string): Parsed<SignInFields> {
  const lines = message.split('\n');
  const first = lines[0]!;
  if (!first.endsWith(HEADER)) return refuse('message_unparsable', 'The message is not a Sign-In-With-Solana message');
  const f: Partial<SolanaMessageFields> = { domain: first.slice(0, -HEADER.length), address: lines[1] ?? '' };
  let i = 2;
  if (lines[i] !== '') return refuse('message_unparsable', 'The SIWS message must have an empty line after the address');
  i++;
  if (lines[i] !== undefined && !lines[i]!.startsWith('URI: ')) {
    f.statement = lines[i];
    i++;
    if (lines[i] !== '') return refuse('message_unparsable', 'The SIWS statement must be one line followed by an empty line');
    i++;
  }
  const field = (label: string): string | undefined => {
    const line = lines[i];
    if (line === undefined || !line.startsWith(`${label}: `)) return undefined;
    i++;
    return line.slice(label.length + 2);
  };
  f.uri = field('URI');
  f.version = field('Version');
  f.chainId = field('Chain ID');
  f.nonce = field('Nonce');
  f.issuedAt = field('Issued At');
  f.expirationTime = field('Expiration Time');
  f.notBefore = field('Not Before');
  f.requestId = field('Request ID');
  if (lines[i] === 'Resources:') {
    i++;
    f.resources = [];
    while (lines[i]?.startsWith('- ')) f.resources.push(lines[i++]!.slice(2));
  }
  if (i !== lines.length) return refuse('message_unparsable', 'The SIWS message has lines out of place or unknown');
  const { domain, address, uri, version, chainId, nonce, issuedAt } = f;
  if (!domain || !address || !uri || !version || !chainId || !nonce || !issuedAt) {
    return refuse('message_incomplete', 'The SIWS message lacks a required field (domain, address, URI, version, chain id, nonce or issued-at)');
  }
  if (!DOMAIN.test(domain)) return refuse('message_invalid', 'The SIWS domain is not a host[:port]');
  if (!solanaPublicKey(address)) return refuse('message_invalid', 'The SIWS address is not a base58 ed25519 public key');
  if (!NONCE.test(nonce)) return refuse('message_invalid', 'The SIWS nonce must be 8 to 64 letters and digits');
  if (!isUri(uri) || (f.resources && !f.resources.every(isUri))) return refuse('message_invalid', 'The SIWS URI and resources must be URIs');
  if (f.requestId !== undefined && !REQUEST_ID.test(f.requestId)) return refuse('message_invalid', 'The SIWS request id must be URI path characters');
  const issued = date(issuedAt);
  const expires = date(f.expirationTime);
  const notBefore = date(f.notBefore);
  if (!issued || expires === null || notBefore === null) return refuse('message_bad_time', 'A time in the message is not an ISO 8601 date-time');
  if (createSolanaMessage(f as SolanaMessageFields) !== message) {
    return refuse('message_not_canonical', 'The message is not in canonical Sign-In-With-Solana form');
  }
  return {
    ok: true,
    value: { chain: 'solana', domain, scheme: undefined, address, uri, version, chainId, nonce, issuedAt: issued, expirationTime: expires, notBefore },
  };
}

const SIGNATURE_SHAPE = 'The signature must be the base58 encoding of a 64-byte ed25519 signature';

/** The 64 signature bytes, or a refusal (checked before the nonce is spent). */
export function decodeSolanaSignature(signature: string): Parsed<Uint8Array> {
  if (!/^[1-9A-HJ-NP-Za-km-z]{64,90}$/.test(signature)) return refuse('signature_malformed', SIGNATURE_SHAPE);
  let sig: Uint8Array;
  try {
    sig = base58.decode(signature);
  } catch {
    return refuse('signature_malformed', SIGNATURE_SHAPE);
  }
  return sig.length === 64 ? { ok: true, value: sig } : refuse('signature_malformed', SIGNATURE_SHAPE);
}

/** Verifies a base58 ed25519 signature of the message's UTF-8 bytes by the address's key (RFC 8032 strict). */
export function verifySolanaSignature(message: string, address: string, signature: string): Parsed<true> {
  const publicKey = solanaPublicKey(address);
  if (!publicKey) return refuse('message_invalid', 'The SIWS address is not a base58 ed25519 public key');
  const decoded = decodeSolanaSignature(signature);
  if (!decoded.ok) return decoded;
  const sig = decoded.value;
  let valid = false;
  try {
    valid = ed25519.verify(sig, new TextEncoder().encode(message), publicKey, { zip215: false });
  } catch {
    valid = false;
  }
  return valid ? { ok: true, value: true } : refuse('signature_mismatch', 'The signature was not made by the wallet in the message');
}
