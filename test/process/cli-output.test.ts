import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/process.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'md-cli-output-'));

describe('moondraft CLI output', () => {
  it('a one-off command writes its log to stderr: stdout carries only what the command prints', async () => {
    // `audit verify --json | jq`, `NEW=$(moondraft keys rotate-master)`: a log line on stdout
    // (here: shared state not answering, as when Redis is down) broke the JSON or the captured key.
    const dataDir = tmp();
    expect((await runCli(['migrate'], { MOONDRAFT_DATA_DIR: dataDir })).code).toBe(0);
    const { code, stdout, stderr } = await runCli(['audit', 'verify', '--json'], { MOONDRAFT_DATA_DIR: dataDir, REDIS_URL: 'redis://127.0.0.1:1' });
    expect(code).toBe(0);
    expect(stderr).toContain('shared state');
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(stdout)).toMatchObject({ ok: true });
  });
});
