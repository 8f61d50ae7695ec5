import { createHash, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MoondraftClient, spkiPin } from '../src/index.js';
import { hmacValid, sendJson, startWireServer, type WireServer } from './support/wire-server.js';

async function selfSignedCert(keyType: 'ec' | 'rsa'): Promise<{ cert: string; key: string }> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType,
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 86400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** The pin computed the way operators do (openssl … pubkey | sha256 | base64), independently of the SDK. */
function independentPin(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

// Both key types: Node exposes an RSA certificate's key as SPKI but an EC one as a bare point.
describe.each(['ec', 'rsa'] as const)('certificate pinning (SPKI SHA-256) over HTTPS, %s certificate', (keyType) => {
  let tls: { cert: string; key: string };
  let other: { cert: string; key: string };
  let server: WireServer;
  beforeAll(async () => {
    [tls, other] = await Promise.all([selfSignedCert(keyType), selfSignedCert(keyType)]);
    server = await startWireServer((req, res) => {
      if (req.target === '/api/v1/time') return sendJson(res, 200, { serverTime: Date.now() }, { serverTime: Date.now() });
      sendJson(res, 200, { id: 'acc_1' }, { serverTime: Date.now() });
    }, tls);
  });
  afterAll(() => server.close());

  it('spkiPin computes the same pin as the operator tooling', () => {
    expect(spkiPin(tls.cert)).toBe(independentPin(tls.cert));
    expect(spkiPin(tls.cert)).not.toBe(spkiPin(other.cert));
  });

  it('accepts the server whose certificate matches a pin, and signs requests as usual', async () => {
    const pin = independentPin(tls.cert);
    const client = new MoondraftClient({
      baseUrl: server.url,
      env: false,
      apiKey: 'md_test_pin',
      apiSecret: 'pin-secret',
      // A pin for the next key first (rotation), then the current one, with curl's prefix.
      tls: { ca: tls.cert, pins: [spkiPin(other.cert), `sha256//${pin}`] },
    });
    await expect(client.account.get()).resolves.toEqual({ id: 'acc_1' });
    expect(hmacValid('pin-secret', server.requests.at(-1)!)).toBe(true);
    client.close();
  });

  it('refuses a server whose certificate matches no pin, before any request is sent', async () => {
    server.requests.length = 0;
    const client = new MoondraftClient({
      baseUrl: server.url,
      env: false,
      apiKey: 'md_test_pin',
      apiSecret: 'pin-secret',
      tls: { ca: tls.cert, pins: [spkiPin(other.cert), createHash('sha256').update(randomBytes(32)).digest('base64')] },
    });
    const error = await client.account.get().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'certificate_pin_mismatch', status: 0, attempts: 1 });
    expect(server.requests).toHaveLength(0); // neither the time sync nor the signed request got through
    client.close();
  });

  it('keeps normal certificate verification: a pin does not make an untrusted certificate acceptable', async () => {
    const client = new MoondraftClient({ baseUrl: server.url, env: false, tls: { pins: [independentPin(tls.cert)] }, retry: { maxRetries: 0 } });
    await expect(client.system.time()).rejects.toMatchObject({ code: 'tls_error' });
    client.close();
  });

  it('refuses pins that are malformed, and pins without https', () => {
    expect(() => new MoondraftClient({ baseUrl: server.url, env: false, tls: { pins: ['not-a-pin'] } })).toThrow(/SPKI/);
    expect(() => new MoondraftClient({ baseUrl: server.url, env: false, tls: { pins: [] } })).toThrow(/empty/);
    expect(() => new MoondraftClient({ baseUrl: 'http://127.0.0.1:1', env: false, tls: { pins: [independentPin(tls.cert)] } })).toThrow(/https/);
    expect(() => new MoondraftClient({ baseUrl: server.url, env: false, transport: 'fetch', tls: { pins: [independentPin(tls.cert)] } })).toThrow(/node transport/);
  });
});

/** Certificates built field by field (names, key identifiers, keys), as a CA or an attacker could. */
describe('certificate pinning: only keys that really signed the chain count', () => {
  x509.cryptoProvider.set(webcrypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = () => webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
  const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86400_000) };
  const pinOf = async (key: webcrypto.CryptoKey) => createHash('sha256').update(Buffer.from(await webcrypto.subtle.exportKey('spki', key))).digest('base64');
  const pemKey = async (key: webcrypto.CryptoKey) => x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');

  async function caCert(name: string, subjectKeys: webcrypto.CryptoKeyPair, signer: { name: string; key: webcrypto.CryptoKey; skid?: string }, skid?: string) {
    return x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex'),
      subject: name,
      issuer: signer.name,
      ...validity,
      signingAlgorithm: alg,
      publicKey: subjectKeys.publicKey,
      signingKey: signer.key,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        skid ? new x509.SubjectKeyIdentifierExtension(skid) : await x509.SubjectKeyIdentifierExtension.create(subjectKeys.publicKey),
        ...(signer.skid ? [new x509.AuthorityKeyIdentifierExtension(signer.skid)] : []),
      ],
    });
  }

  async function leafCert(leafKeys: webcrypto.CryptoKeyPair, issuer: { name: string; key: webcrypto.CryptoKey; skid: string }) {
    return x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex'),
      subject: 'CN=127.0.0.1',
      issuer: issuer.name,
      ...validity,
      signingAlgorithm: alg,
      publicKey: leafKeys.publicKey,
      signingKey: issuer.key,
      extensions: [
        new x509.BasicConstraintsExtension(false),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
        new x509.AuthorityKeyIdentifierExtension(issuer.skid),
      ],
    });
  }

  const skidOf = (cert: x509.X509Certificate) => cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;

  async function serve(key: webcrypto.CryptoKey, chain: x509.X509Certificate[]) {
    return startWireServer((_req, res) => sendJson(res, 200, { serverTime: Date.now() }, { serverTime: Date.now() }), {
      key: await pemKey(key),
      cert: chain.map((c) => c.toString('pem')).join('\n'),
    });
  }

  it('accepts a pinned intermediate CA that signed the leaf', async () => {
    const [rootKeys, caKeys, leafKeys] = await Promise.all([keys(), keys(), keys()]);
    const root = await caCert('CN=Root', rootKeys, { name: 'CN=Root', key: rootKeys.privateKey });
    const ca = await caCert('CN=Issuing CA', caKeys, { name: 'CN=Root', key: rootKeys.privateKey, skid: skidOf(root) });
    const leaf = await leafCert(leafKeys, { name: 'CN=Issuing CA', key: caKeys.privateKey, skid: skidOf(ca) });
    const server = await serve(leafKeys.privateKey, [leaf, ca]);
    const client = new MoondraftClient({ baseUrl: server.url, env: false, tls: { ca: root.toString('pem'), pins: [await pinOf(caKeys.publicKey)] } });
    await expect(client.system.time()).resolves.toHaveProperty('serverTime');
    client.close();
    await server.close();
  });

  it('refuses a chain that merely carries the pinned key in a certificate that signed nothing', async () => {
    // The pinned key is the real server's CA; its public key is public. A certificate from another
    // trusted CA (mis-issued for this host) verifies, and the server adds a made-up certificate with
    // that CA's name and key identifier but the pinned key: Node links it as the leaf's issuer.
    const [pinnedKeys, otherCaKeys, leafKeys] = await Promise.all([keys(), keys(), keys()]);
    const otherCa = await caCert('CN=Other Public CA', otherCaKeys, { name: 'CN=Other Public CA', key: otherCaKeys.privateKey });
    const leaf = await leafCert(leafKeys, { name: 'CN=Other Public CA', key: otherCaKeys.privateKey, skid: skidOf(otherCa) });
    const decoy = await caCert('CN=Other Public CA', pinnedKeys, { name: 'CN=Other Public CA', key: otherCaKeys.privateKey }, skidOf(otherCa));
    const server = await serve(leafKeys.privateKey, [leaf, decoy]);
    const client = new MoondraftClient({ baseUrl: server.url, env: false, tls: { ca: otherCa.toString('pem'), pins: [await pinOf(pinnedKeys.publicKey)] } });
    await expect(client.system.time()).rejects.toMatchObject({ code: 'certificate_pin_mismatch', status: 0 });
    expect(server.requests).toHaveLength(0);
    client.close();
    await server.close();
  });
});
