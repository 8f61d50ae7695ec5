/** One figure of `npm run bench`, with the baseline it is compared to, measured in the same run. */
export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** Higher is better (default) or lower is better (latencies). */
  better?: 'higher' | 'lower';
  note?: string;
}

/** A benchmark module: `bench/<feature>.ts` exporting `run`. */
export interface BenchModule {
  run(): Promise<BenchRow[]>;
}

/** Runs `fn` repeatedly for about `ms` and returns operations per second. */
export async function opsPerSecond(fn: () => unknown | Promise<unknown>, ms = 1000, batch = 100): Promise<number> {
  for (let i = 0; i < batch; i++) await fn(); // warm-up
  let ops = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  while (process.hrtime.bigint() - start < limit) {
    for (let i = 0; i < batch; i++) await fn();
    ops += batch;
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  return ops / elapsed;
}

/** The same, for synchronous work (no await overhead in the measurement). */
export function opsPerSecondSync(fn: () => unknown, ms = 1000, batch = 100): number {
  for (let i = 0; i < batch; i++) fn();
  let ops = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  while (process.hrtime.bigint() - start < limit) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
  }
  return ops / (Number(process.hrtime.bigint() - start) / 1e9);
}
