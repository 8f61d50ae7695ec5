import { existsSync } from 'node:fs';
import path from 'node:path';
import { generate } from 'selfsigned';
import { writeSecretFile } from '../config/secrets.js';
import { rmSync, writeFileSync } from 'node:fs';

/** Writes a self-signed certificate and key for local HTTPS trials (never for production). */
export async function writeDevCert(dir: string, hosts: string[], force = false): Promise<{ certFile: string; keyFile: string }> {
  const certFile = path.join(dir, 'dev-cert.pem');
  const keyFile = path.join(dir, 'dev-key.pem');
  if (!force && (existsSync(certFile) || existsSync(keyFile))) throw new Error(`${certFile} or ${keyFile} exists; use --force to replace`);
  const altNames = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? { type: 7 as const, ip: h } : { type: 2 as const, value: h }));
  const pems = await generate([{ name: 'commonName', value: hosts[0] ?? 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 30 * 86400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  // Replaced, not rewritten: writeFileSync's mode only applies to a new file, so an old key file
  // readable by others (0644) would keep its mode with the new private key in it.
  if (force) rmSync(keyFile, { force: true });
  writeSecretFile(keyFile, pems.private);
  writeFileSync(certFile, pems.cert, { mode: 0o644 });
  return { certFile, keyFile };
}
