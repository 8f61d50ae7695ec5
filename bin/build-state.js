// Whether the `moondraft` command must build dist/ before it runs: when dist/ is missing, or when a
// source file changed after the last build (after a `git pull`, say), so that the command never runs
// stale compiled code. A checkout without src/ (an installed package) only needs dist/ to exist.
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const STAMP = '.build-stamp';

/** The newest modification time (ms) of the non-test TypeScript sources under `dir`. */
function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(file));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(file).mtimeMs);
  }
  return newest;
}

export function needsBuild(root) {
  const entry = join(root, 'dist', 'cli', 'index.js');
  if (!existsSync(entry)) return true;
  const src = join(root, 'src');
  if (!existsSync(src)) return false;
  const stamp = join(root, 'dist', STAMP);
  // dist/ from `npm run build` (no stamp): judged by its entry point's time.
  const built = existsSync(stamp) ? statSync(stamp).mtimeMs : statSync(entry).mtimeMs;
  return newestSource(src) > built;
}

/** Records that dist/ was built from the sources as they are now. */
export function markBuilt(root) {
  writeFileSync(join(root, 'dist', STAMP), `${new Date().toISOString()}\n`);
}
