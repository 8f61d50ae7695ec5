/**
 * The error contract's lists, held to one another so that they cannot drift: the shared contract's
 * "Error codes" (../shared/API.md, when it is beside the repository; MOONDRAFT_SHARED_DIR points
 * elsewhere), the copy of it in docs/API.md, docs/API.md's table of statuses, the server's registry
 * (src/errors/registry.ts), and the SDK's list of codes (packages/client/src/errors.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_ERROR_CODES } from '@moondraft/client';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors/registry.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sharedApi = path.join(process.env.MOONDRAFT_SHARED_DIR ?? path.resolve(repoRoot, '../shared'), 'API.md');
const docs = readFileSync(path.join(repoRoot, 'docs/API.md'), 'utf8');
const registry = Object.keys(ERRORS).sort();

/** The codes of a contract's "## Error codes" section (up to its closing sentence). */
function contractCodes(text: string): string[] {
  const section = text.split(/^## Error codes$/m)[1];
  if (section === undefined) throw new Error('no "## Error codes" section');
  const list = section.split('Add codes when')[0]!;
  return [...list.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!);
}

/** docs/API.md's "## Error code statuses" table: code → status, and what it says besides. */
function statusTable(): Map<string, { status: number; also: string }> {
  const section = docs.split(/^## Error code statuses$/m)[1];
  if (section === undefined) throw new Error('docs/API.md has no "## Error code statuses" section');
  const rows = new Map<string, { status: number; also: string }>();
  for (const m of section.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|(.*)\|$/gm)) {
    expect(rows.has(m[1]!), `${m[1]} listed twice`).toBe(false);
    rows.set(m[1]!, { status: Number(m[2]), also: m[3]!.trim() });
  }
  return rows;
}

/** Codes no route or stage can answer yet: the docs' table must say so. */
const NOT_ANSWERED = ['account_isolated'];

describe('the error contract', () => {
  it('docs/API.md carries the shared contract’s codes unchanged (a copy of them is kept beside this test)', () => {
    const copy = (JSON.parse(readFileSync(path.join(repoRoot, 'test/http/shared-error-codes.json'), 'utf8')) as { codes: string[] }).codes;
    expect(contractCodes(docs)).toEqual(copy);
    // Where the shared contract is beside the repository (not in every CI checkout), the copy is held to it too.
    if (existsSync(sharedApi)) expect(copy).toEqual(contractCodes(readFileSync(sharedApi, 'utf8')));
  });

  it('every code of the shared contract is registered', () => {
    const codes = contractCodes(docs);
    expect(codes.length).toBeGreaterThan(30);
    expect(codes.filter((c) => !Object.hasOwn(ERRORS, c))).toEqual([]);
  });

  it('docs/API.md gives every registered code with the status the server answers it with, and no other code', () => {
    const table = statusTable();
    expect([...table.keys()].sort()).toEqual(registry);
    for (const [code, { status }] of table) expect(status, code).toBe(ERRORS[code as keyof typeof ERRORS].status);
    // Codes elsewhere in the docs, written as "403 `code`" or "`code` (403", name the same status.
    for (const m of docs.matchAll(/\b(\d{3}) `([a-z_]+)`|`([a-z_]+)` \((\d{3})\b/g)) {
      const code = m[2] ?? m[3]!;
      const status = Number(m[1] ?? m[4]);
      if (Object.hasOwn(ERRORS, code)) expect(status, m[0]).toBe(ERRORS[code as keyof typeof ERRORS].status);
    }
  });

  it('the SDK knows exactly the registered codes', () => {
    expect([...SERVER_ERROR_CODES].sort()).toEqual(registry);
  });

  it('every registered code is answered somewhere in the server, or the docs say it is not yet', () => {
    const sources = execFileSync('git', ['ls-files', 'src/*.ts'], { cwd: repoRoot, encoding: 'utf8' })
      .split('\n')
      .filter((f) => f && !f.endsWith('.test.ts') && f !== 'src/errors/registry.ts');
    const text = sources.map((f) => readFileSync(path.join(repoRoot, f), 'utf8')).join('\n');
    const unused = registry.filter((code) => !text.includes(`'${code}'`));
    expect(unused).toEqual(NOT_ANSWERED);
    const table = statusTable();
    for (const code of NOT_ANSWERED) expect(table.get(code)?.also, code).toMatch(/not answered yet/);
  });
});
