import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Root suites use the SDK from source, so no build step is needed before `npm test`.
    alias: { '@moondraft/client': fileURLToPath(new URL('./packages/client/src/index.ts', import.meta.url)) },
  },
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    pool: 'forks',
    // At least two files at a time. Vitest's default (one fewer than the CPUs) runs them one by one
    // on a two-core machine, where many suites mostly wait: for server processes they start, for
    // PostgreSQL and Redis, for timers. Two at a time took the whole suite from 852 s to 670 s there.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
  },
});
