export { canonicalMessage, checkTimestamp, RECV_WINDOW, type CanonicalParts, type TimestampVerdict } from './canonical.js';
export { describeSigned, ed25519PublicKey, hmacSignatureHex, messageDigest, verifyEd25519, verifyHmac } from './verify.js';
