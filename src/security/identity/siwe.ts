import { getAddress, recoverMessageAddress } from 'viem';
import { createSiweMessage, parseSiweMessage, validateSiweMessage, type SiweMessage } from 'viem/siwe';
import { refuse, REQUEST_ID, SIGN_IN_STATEMENT, type Parsed, type SignInFields } from './sign-in-message.js';

/**
 * Sign-In with Ethereum (EIP-4361) through viem's SIWE helpers. Only externally owned accounts
 * can sign in: their 65-byte ECDSA signature is verified offline. Contract wallets (EIP-1271, and
 * ERC-6492 for undeployed ones) are verified by calling the contract, which needs an Ethereum RPC
 * endpoint this server does not have, so they are refused with a message that says so.
 */

export function createEthereumChallenge(input: {
  address: string;
  domain: string;
  uri: string;
  chainId: number;
  nonce: string;
  issuedAt: Date;
  expirationTime: Date;
}): string {
  const scheme = new URL(input.uri).protocol.slice(0, -1);
  return createSiweMessage({
    address: getAddress(input.address),
    domain: input.domain,
    // EIP-4361: no scheme means https; say so explicitly when the server is reached otherwise.
    ...(scheme === 'https' ? {} : { scheme }),
    statement: SIGN_IN_STATEMENT,
    uri: input.uri,
    version: '1',
    chainId: input.chainId,
    nonce: input.nonce,
    issuedAt: input.issuedAt,
    expirationTime: input.expirationTime,
  });
}

/**
 * Parses an EIP-4361 message and accepts it only when it is exactly what createSiweMessage renders
 * from the parsed fields: viem's parser is lenient (the field block may be found anywhere), and a
 * message that parses one way but reads another to the person signing it must not pass.
 */
export function parseEthereumMessage(message: string): Parsed<SignInFields> {
  let fields: ReturnType<typeof parseSiweMessage>;
  try {
    fields = parseSiweMessage(message);
  } catch {
    return refuse('message_unparsable', 'The message is not an EIP-4361 sign-in message');
  }
  const { domain, address, uri, version, chainId, nonce, issuedAt } = fields;
  if (!domain || !address || !uri || !version || chainId === undefined || !nonce || !issuedAt) {
    return refuse('message_incomplete', 'The EIP-4361 message lacks a required field (domain, address, URI, version, chain id, nonce or issued-at)');
  }
  if (Number.isNaN(issuedAt.getTime()) || (fields.expirationTime && Number.isNaN(fields.expirationTime.getTime())) || (fields.notBefore && Number.isNaN(fields.notBefore.getTime()))) {
    return refuse('message_bad_time', 'A time in the message is not an RFC 3339 date-time');
  }
  // viem renders any Request ID as given; EIP-4361 allows only URI path characters there.
  if (fields.requestId !== undefined && !REQUEST_ID.test(fields.requestId)) {
    return refuse('message_invalid', 'The EIP-4361 request id must be URI path characters');
  }
  let canonical: string;
  try {
    canonical = createSiweMessage(fields as SiweMessage);
  } catch {
    return refuse('message_invalid', 'The EIP-4361 message has a field that is not valid');
  }
  if (canonical !== message) {
    return refuse('message_not_canonical', 'The message is not in canonical EIP-4361 form (sign the message exactly as issued by /auth/challenge, with an EIP-55 address and ISO 8601 UTC times)');
  }
  return {
    ok: true,
    value: {
      chain: 'ethereum',
      domain,
      scheme: fields.scheme,
      address,
      uri,
      version,
      chainId: String(chainId),
      nonce,
      issuedAt,
      expirationTime: fields.expirationTime,
      notBefore: fields.notBefore,
    },
  };
}

/**
 * viem's own EIP-4361 checks (domain, nonce shape, version "1", address syntax, expiration and
 * not-before against `now`), run after ours, which give the clearer refusals.
 */
export function passesSiweValidation(fields: SignInFields, domain: string, now: Date): boolean {
  return validateSiweMessage({
    domain,
    time: now,
    message: {
      domain: fields.domain,
      address: fields.address as `0x${string}`,
      uri: fields.uri,
      version: fields.version as '1',
      chainId: Number(fields.chainId),
      nonce: fields.nonce,
      issuedAt: fields.issuedAt,
      ...(fields.scheme ? { scheme: fields.scheme } : {}),
      ...(fields.expirationTime ? { expirationTime: fields.expirationTime } : {}),
      ...(fields.notBefore ? { notBefore: fields.notBefore } : {}),
    },
  });
}

const EOA_SIGNATURE = /^0x[0-9a-fA-F]{130}$/;
const HEX = /^0x(?:[0-9a-fA-F]{2})*$/;
const CONTRACT_WALLET =
  'contract wallets (EIP-1271 / ERC-6492 signatures) cannot sign in: verifying them needs an Ethereum RPC endpoint this server does not have; sign in with an externally owned account';

/** Whether the signature can be an EOA's at all (checked before the nonce is spent). */
export function checkEthereumSignatureShape(signature: string): Parsed<true> {
  if (!HEX.test(signature)) return refuse('signature_malformed', 'The signature must be 0x-prefixed hex');
  if (!EOA_SIGNATURE.test(signature)) return refuse('contract_wallet', `The signature is not a 65-byte ECDSA signature: ${CONTRACT_WALLET}`);
  return { ok: true, value: true };
}

/** Verifies an EOA signature (EIP-191 personal_sign) of `message` by `address`, offline. */
export async function verifyEthereumSignature(message: string, address: string, signature: string): Promise<Parsed<true>> {
  const shape = checkEthereumSignatureShape(signature);
  if (!shape.ok) return shape;
  let recovered: string;
  try {
    recovered = await recoverMessageAddress({ message, signature: signature as `0x${string}` });
  } catch {
    return refuse('signature_invalid', 'The signature is not a valid ECDSA signature');
  }
  if (recovered.toLowerCase() !== address.toLowerCase()) {
    return refuse('signature_mismatch', `The signature was not made by the address in the message (${CONTRACT_WALLET})`);
  }
  return { ok: true, value: true };
}
