import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript next to the command it serves, without type declarations
import { markBuilt, needsBuild } from '../../bin/build-state.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A checkout with one source file and, optionally, a built entry point. */
function checkout(options: { built: boolean }): string {
  const root = mkdtempSync(path.join(tmpdir(), 'moondraft-build-state-'));
  dirs.push(root);
  mkdirSync(path.join(root, 'src', 'cli'), { recursive: true });
  writeFileSync(path.join(root, 'src', 'cli', 'index.ts'), 'export {};\n');
  if (options.built) {
    mkdirSync(path.join(root, 'dist', 'cli'), { recursive: true });
    writeFileSync(path.join(root, 'dist', 'cli', 'index.js'), 'export {};\n');
  }
  return root;
}

const at = (file: string, seconds: number) => utimesSync(file, seconds, seconds);

describe('the moondraft command rebuilds dist/ when the sources are newer', () => {
  it('builds when dist/ is missing', () => {
    expect(needsBuild(checkout({ built: false }))).toBe(true);
  });

  it('does not build again when nothing changed since the last build', () => {
    const root = checkout({ built: true });
    at(path.join(root, 'src', 'cli', 'index.ts'), 1_000);
    markBuilt(root);
    expect(needsBuild(root)).toBe(false);
  });

  it('builds again after a source file changed (a git pull), however deep', () => {
    const root = checkout({ built: true });
    markBuilt(root);
    at(path.join(root, 'dist', '.build-stamp'), 1_000);
    mkdirSync(path.join(root, 'src', 'trading', 'orders'), { recursive: true });
    const changed = path.join(root, 'src', 'trading', 'orders', 'service.ts');
    writeFileSync(changed, 'export {};\n');
    at(changed, 2_000);
    expect(needsBuild(root)).toBe(true);
  });

  it('ignores test files, and judges a dist/ built by npm run build (no stamp) by its entry point', () => {
    const root = checkout({ built: true });
    at(path.join(root, 'src', 'cli', 'index.ts'), 1_000);
    at(path.join(root, 'dist', 'cli', 'index.js'), 2_000);
    const testFile = path.join(root, 'src', 'cli', 'index.test.ts');
    writeFileSync(testFile, 'export {};\n');
    at(testFile, 3_000);
    expect(needsBuild(root)).toBe(false);
    at(path.join(root, 'src', 'cli', 'index.ts'), 3_000);
    expect(needsBuild(root)).toBe(true);
  });

  it('an installed package without src/ runs its dist/ as it is', () => {
    const root = checkout({ built: true });
    rmSync(path.join(root, 'src'), { recursive: true });
    expect(needsBuild(root)).toBe(false);
  });
});
