import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/index.js';
import { startTestServer } from '../support/server.js';
import { seedEvents } from './support.js';

/** `moondraft audit verify` against the data dir a server left behind. */
describe('moondraft audit verify', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-audit-cli-'));
    const server = await startTestServer({ dataDir, sqliteFile: true });
    await seedEvents(server, 4);
    await server.close();
    process.env.MOONDRAFT_DATA_DIR = dataDir;
    process.env.MOONDRAFT_LOG_LEVEL = 'silent';
  });
  afterAll(() => {
    process.exitCode = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function run(...args: string[]): Promise<{ out: string; exitCode: number }> {
    const lines: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
    const err = vi.spyOn(console, 'error').mockImplementation((line: string) => void lines.push(line));
    process.exitCode = undefined;
    try {
      await main(['node', 'moondraft', 'audit', 'verify', ...args]);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
    const exitCode = Number(process.exitCode ?? 0);
    process.exitCode = undefined;
    return { out: lines.join('\n'), exitCode };
  }

  it('exits 0 and says so when the chain is intact', async () => {
    const { out, exitCode } = await run();
    expect(exitCode).toBe(0);
    expect(out).toMatch(/^audit log OK: \d+ records/);
  });

  it('prints a JSON report with --json', async () => {
    const { out, exitCode } = await run('--json');
    expect(exitCode).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ ok: true });
  });

  it('exits 1 and names the first broken record when one was changed; the verification itself is audited', async () => {
    const server = await startTestServer({ dataDir, sqliteFile: true });
    const reads = (await server.services.audit.list({ type: 'audit.read' }, { limit: 10 })).records;
    expect(reads.map((r) => r.details)).toEqual(expect.arrayContaining([expect.objectContaining({ view: 'verify', via: 'cli', result: 'ok' })]));
    await server.services.store.db.updateTable('audit_events').set({ type: 'admin.limits.changed', outcome: 'denied' }).where('seq', '=', 2).execute();
    await server.close();
    const { out, exitCode } = await run();
    expect(exitCode).toBe(1);
    expect(out).toMatch(/^audit log BROKEN at seq 2 \(aud_[0-9A-Z]+\): changed: /);
  });
});
