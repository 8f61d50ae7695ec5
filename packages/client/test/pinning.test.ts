import { createHash, randomBytes, X509Certificate } from 'node:crypto';
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
