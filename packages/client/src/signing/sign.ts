import { createHash, createHmac } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { SignedParts } from '../errors.js';

/** The parts of a request that API-key signatures cover (API.md "API keys and request signing"). */
export interface RequestToSign {
  /** Epoch milliseconds, as the decimal string sent in `X-API-Timestamp`. */
  timestamp: string;
  /** Upper-case HTTP method. */
  method: string;
  /** The request target exactly as sent: path plus `?query` when there is one. */
  path: string;
  /** The raw body bytes exactly as sent; empty when there is none. */
  body: Uint8Array | string;
}

/** Produces the `X-API-Signature` value for a canonical message. */
export interface RequestSigner {
  readonly kind: 'hmac' | 'ed25519';
  sign(message: Uint8Array): string;
}

const utf8 = new TextEncoder();

function bytesOf(body: Uint8Array | string): Uint8Array {
  return typeof body === 'string' ? utf8.encode(body) : body;
}

/**
 * The canonical message `timestamp + METHOD + pathWithQuery + body` as bytes. The body is appended as
 * raw bytes (never re-encoded), so what is signed is exactly what goes on the wire.
 */
export function canonicalMessage(request: RequestToSign): Uint8Array {
  const head = utf8.encode(request.timestamp + request.method.toUpperCase() + request.path);
  const body = bytesOf(request.body);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/**
 * HMAC-SHA256 keyed with the UTF-8 bytes of the API secret; lowercase hex.
 *
 * @example
 * hmacSigner(process.env.MOONDRAFT_API_SECRET!).sign(canonicalMessage({ timestamp, method, path, body }))
 */
export function hmacSigner(apiSecret: string): RequestSigner {
  if (typeof apiSecret !== 'string' || apiSecret.length === 0) throw new TypeError('apiSecret must be a non-empty string');
  const key = utf8.encode(apiSecret);
  return {
    kind: 'hmac',
    sign: (message) => createHmac('sha256', key).update(message).digest('hex'),
  };
}

/** Ed25519 over the same canonical message; lowercase hex of the 64-byte signature. */
export function ed25519Signer(privateKey: string | Uint8Array): RequestSigner {
  const secret = ed25519PrivateKeyBytes(privateKey);
  return {
    kind: 'ed25519',
    sign: (message) => Buffer.from(ed25519.sign(message, secret)).toString('hex'),
  };
}

/** Signs one request: the `X-API-Signature` value. */
export function signRequest(signer: RequestSigner, request: RequestToSign): string {
  return signer.sign(canonicalMessage(request));
}

/** What was signed, without any secret: compared with the server's view on `invalid_signature`. */
export function signedParts(request: RequestToSign): SignedParts {
  const body = bytesOf(request.body);
  return {
    timestamp: request.timestamp,
    method: request.method.toUpperCase(),
    path: request.path,
    bodyLength: body.length,
    bodySha256: createHash('sha256').update(body).digest('hex'),
  };
}

/**
 * A new ed25519 key pair for an `ed25519` API key: register `publicKey` with `keys.create({ type:
 * 'ed25519', publicKey })` and keep `privateKey` (32-byte seed, hex) to yourself. Both are lowercase hex.
 */
export function generateEd25519KeyPair(): { privateKey: string; publicKey: string } {
  const secret = ed25519.utils.randomSecretKey();
  return { privateKey: Buffer.from(secret).toString('hex'), publicKey: Buffer.from(ed25519.getPublicKey(secret)).toString('hex') };
}

/** The public key (hex) of an ed25519 private key (32-byte seed, hex or bytes). */
export function ed25519PublicKey(privateKey: string | Uint8Array): string {
  return Buffer.from(ed25519.getPublicKey(ed25519PrivateKeyBytes(privateKey))).toString('hex');
}

function ed25519PrivateKeyBytes(privateKey: string | Uint8Array): Uint8Array {
  if (privateKey instanceof Uint8Array) {
    if (privateKey.length !== 32) throw new TypeError('an ed25519 private key is a 32-byte seed');
    return Uint8Array.from(privateKey);
  }
  const hex = privateKey.trim().replace(/^0x/i, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new TypeError('an ed25519 private key is a 32-byte seed in hex (64 hex digits)');
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}
