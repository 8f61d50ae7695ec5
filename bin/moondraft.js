#!/usr/bin/env node
// The `moondraft` command. Builds the TypeScript sources first when dist/ is missing or older than
// them (see build-state.js).
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { markBuilt, needsBuild } from './build-state.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'cli', 'index.js');
if (needsBuild(root)) {
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: ['ignore', 2, 2] });
  markBuilt(root);
}
const { main } = await import(entry);
await main(process.argv);
