import { createHash, X509Certificate } from 'node:crypto';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { TransportError } from './types.js';

/**
 * Normalises SPKI pins: base64 of the SHA-256 of the DER SubjectPublicKeyInfo (the HPKP / curl
 * `sha256//` format; the prefix is accepted and dropped). Refuses anything that is not 32 bytes.
 */
export function normalizePins(pins: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const raw of pins) {
    const pin = raw.trim().replace(/^sha256\/\/?/i, '');
    if (!/^[A-Za-z0-9+/]{43}=$/.test(pin) || Buffer.from(pin, 'base64').length !== 32) {
      throw new TypeError(`not an SPKI SHA-256 pin (base64 of 32 bytes): ${JSON.stringify(raw)}`);
    }
    out.add(pin);
  }
  if (out.size === 0) throw new TypeError('tls.pins is empty: give at least one pin, or leave pins out');
  return out;
}

/**
 * The SPKI SHA-256 pin (base64) of a PEM or DER certificate: what to put in `tls.pins`.
 *
 * @example
 * spkiPin(readFileSync('server-cert.pem'))  // 'n3Qp…='
 */
export function spkiPin(certificate: string | Uint8Array): string {
  const spki = new X509Certificate(certificate).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/**
 * A `checkServerIdentity` that keeps Node's own host-name check and then requires one certificate of
 * the presented chain (leaf, intermediate or root) to carry a pinned public key. It runs only after
 * the chain itself verified: a pin adds to normal verification and never replaces it.
 *
 * Node links `issuerCertificate` by names and key identifiers only, among the certificates the server
 * sent: a server may send, beside the chain that verified, a made-up certificate carrying the pinned
 * (public) key under its issuer's name. So the walk goes up only while each certificate's signature
 * verifies with the next one's key: a pinned key counts only when it really signed the chain down to
 * the leaf (whose key the handshake proved).
 */
export function pinnedIdentityCheck(pins: ReadonlySet<string>) {
  return (host: string, cert: PeerCertificate): Error | undefined => {
    const hostError = checkServerIdentity(host, cert);
    if (hostError) return hostError;
    const seen: string[] = [];
    let current: PeerCertificate | undefined = cert;
    let signed: X509Certificate | undefined;
    for (let depth = 0; current?.raw && depth < 10; depth++) {
      const x509 = new X509Certificate(current.raw);
      // The certificate below must carry this one's signature, else the chain stops here.
      if (signed && !signed.verify(x509.publicKey)) break;
      // From the certificate's DER, not `cert.pubkey`: for EC keys Node gives the bare curve point there,
      // whose hash is not the SPKI pin that operators compute.
      const pin = spkiPin(current.raw);
      if (pins.has(pin)) return undefined;
      seen.push(pin);
      signed = x509;
      const issuer: PeerCertificate | undefined = (current as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
      current = issuer && issuer !== current && issuer.fingerprint256 !== current.fingerprint256 ? issuer : undefined;
    }
    return new TransportError('pin', `the certificate chain of ${host} matches no configured SPKI pin (chain pins: ${seen.join(', ') || 'none'})`);
  };
}
