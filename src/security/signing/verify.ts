import { createHash, createHmac, hash, createPublicKey, timingSafeEqual, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { canonicalMessage, type CanonicalParts } from './canonical.js';

/** Lowercase hex of HMAC-SHA256 keyed with the secret's UTF-8 bytes over the canonical message. */
export function hmacSignatureHex(secret: string | Uint8Array, parts: CanonicalParts): string {
  return createHmac('sha256', secret).update(canonicalMessage(parts)).digest('hex');
}

const HMAC_HEX = /^[0-9a-f]{64}$/;
const ED25519_HEX = /^[0-9a-f]{128}$/;

/**
 * Verifies an hmac signature in constant time. Only lowercase hex is accepted, so one signature
 * has exactly one spelling (a replay cannot be disguised by changing letter case).
 */
export function verifyHmac(secret: string | Uint8Array, parts: CanonicalParts, signatureHex: string): boolean {
  return verifyHmacMessage(secret, canonicalMessage(parts), signatureHex);
}

/** `verifyHmac` over an already built canonical message (the server builds it once per request). */
export function verifyHmacMessage(secret: string | Uint8Array, message: Uint8Array, signatureHex: string): boolean {
  if (!HMAC_HEX.test(signatureHex)) return false;
  const expected = createHmac('sha256', secret).update(message).digest();
  return timingSafeEqual(expected, Buffer.from(signatureHex, 'hex'));
}

/** An ed25519 public key object from its 32 raw bytes (hex), for `verifyEd25519`. */
export function ed25519PublicKey(publicKeyHex: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyHex, 'hex').toString('base64url') }, format: 'jwk' });
}

/** Verifies an ed25519 signature (lowercase hex of the 64 signature bytes) over the canonical message. */
export function verifyEd25519(publicKey: KeyObject, parts: CanonicalParts, signatureHex: string): boolean {
  return verifyEd25519Message(publicKey, canonicalMessage(parts), signatureHex);
}

/** `verifyEd25519` over an already built canonical message. */
export function verifyEd25519Message(publicKey: KeyObject, message: Uint8Array, signatureHex: string): boolean {
  if (!ED25519_HEX.test(signatureHex)) return false;
  try {
    return nodeVerify(null, message, publicKey, Buffer.from(signatureHex, 'hex'));
  } catch {
    return false;
  }
}

/**
 * What the server signed, for an `invalid_signature` answer: enough for a client to find where its
 * own canonical message differs, and nothing secret (the body itself is summarised by length and hash).
 */
export function describeSigned(parts: CanonicalParts): { timestamp: string; method: string; path: string; bodyLength: number; bodySha256: string } {
  const body = typeof parts.body === 'string' ? Buffer.from(parts.body, 'utf8') : parts.body;
  return {
    timestamp: parts.timestamp,
    method: parts.method,
    path: parts.pathWithQuery,
    bodyLength: body.length,
    bodySha256: createHash('sha256').update(body).digest('hex'),
  };
}

/** SHA-256 of the canonical message: the identity of one signed request (replay memory key). */
export function messageDigest(parts: CanonicalParts | Uint8Array): string {
  return hash('sha256', parts instanceof Uint8Array ? parts : canonicalMessage(parts), 'hex');
}
