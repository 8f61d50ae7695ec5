import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeDevCert } from './dev-cert.js';

describe('dev-cert', () => {
  it('--force over a key file readable by others leaves the new private key readable by its owner only', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'md-devcert-'));
    const keyFile = path.join(dir, 'dev-key.pem');
    writeFileSync(keyFile, 'old');
    chmodSync(keyFile, 0o644);
    await writeDevCert(dir, ['localhost'], true);
    expect(readFileSync(keyFile, 'utf8')).toContain('PRIVATE KEY');
    expect((statSync(keyFile).mode & 0o777).toString(8)).toBe('600');
  }, 30_000);
});
