import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/process.js';

describe('npm run demo', () => {
  it('walks through every step and exits 0', async () => {
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/demo.ts')], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('exit', (c) => resolve({ code: c, out }));
    });
    expect(out).not.toContain('misbehaved');
    expect(code).toBe(0);
    expect(out).toContain('Demo complete: every step behaved.');
    for (const shown of ['rate_limited', 'signature_required', 'replayed_request', 'ip_not_allowed', 'filled']) expect(out).toContain(shown);
  }, 90_000);
});
