/**
 * Certificate pinning against the real server serving HTTPS (a certificate from `moondraft dev-cert`):
 * the right SPKI pin is accepted, a wrong one is refused before any request is sent, and pins never
 * replace normal verification.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MoondraftClient, MoondraftError, spkiPin, type ResponseEvent } from '@moondraft/client';
import { writeDevCert } from '../../src/cli/dev-cert.js';
import { startRealServer, type RealServer } from './support.js';

let dir: string;
let server: RealServer;
let certPem: string;
let otherCertPem: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'moondraft-sdk-tls-'));
  const tls = await writeDevCert(dir, ['127.0.0.1', 'localhost']);
  certPem = readFileSync(tls.certFile, 'utf8');
  // Another certificate for the same names: what an impostor with a certificate the client trusts would present.
  otherCertPem = readFileSync((await writeDevCert(mkdtempSync(path.join(dir, 'other-')), ['127.0.0.1', 'localhost'])).certFile, 'utf8');
  server = await startRealServer({ tls });
});
afterAll(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('certificate pinning over real HTTPS', () => {
  it('serves HTTPS on its public URL', () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('accepts the server whose key is pinned, for sign-in and session calls', async () => {
    const responses: ResponseEvent[] = [];
    const client = new MoondraftClient({ baseUrl: server.url, env: false, tls: { ca: certPem, pins: [spkiPin(certPem)] }, hooks: { onResponse: (e) => responses.push(e) } });
    try {
      await expect(client.system.health()).resolves.toEqual({ status: 'ok', store: true, state: true });
      await client.signIn(privateKeyToAccount(generatePrivateKey()));
      await expect(client.account.get()).resolves.toMatchObject({ role: 'trader' });
      expect(responses.every((r) => r.status === 200)).toBe(true);
    } finally {
      client.close();
    }
  });

  it('accepts a pin set holding the current key beside the next one (rotation)', async () => {
    const client = new MoondraftClient({ baseUrl: server.url, env: false, tls: { ca: certPem, pins: [spkiPin(otherCertPem), spkiPin(certPem)] } });
    try {
      await expect(client.system.time()).resolves.toEqual({ serverTime: expect.any(Number) });
    } finally {
      client.close();
    }
  });

  it('refuses the server when no pin matches: certificate_pin_mismatch, nothing sent', async () => {
    const responses: ResponseEvent[] = [];
    for (const pins of [[spkiPin(otherCertPem)], [randomBytes(32).toString('base64')]]) {
      const client = new MoondraftClient({ baseUrl: server.url, env: false, tls: { ca: certPem, pins }, hooks: { onResponse: (e) => responses.push(e) } });
      try {
        const error = await client.signIn(privateKeyToAccount(generatePrivateKey())).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MoondraftError);
        expect(error).toMatchObject({ code: 'certificate_pin_mismatch', status: 0, requestId: undefined });
        expect((error as MoondraftError).message).toContain(spkiPin(certPem)); // names the pin it saw
        expect(client.session).toBeNull();
      } finally {
        client.close();
      }
    }
    expect(responses).toEqual([]);
  });

  it('a pin does not replace verification: without the CA the self-signed certificate is refused (tls_error)', async () => {
    const client = new MoondraftClient({ baseUrl: server.url, env: false, tls: { pins: [spkiPin(certPem)] } });
    try {
      await expect(client.system.time()).rejects.toMatchObject({ code: 'tls_error', status: 0 });
    } finally {
      client.close();
    }
  });
});
