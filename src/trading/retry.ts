/**
 * A row changed under us between read and write (optimistic check failed). The whole transaction
 * is rolled back and retried; nothing was acknowledged.
 */
export class ConcurrentUpdateError extends Error {
  constructor(what: string) {
    super(`concurrent update of ${what}`);
    this.name = 'ConcurrentUpdateError';
  }
}

/**
 * Store errors that mean "another writer got there first; run the transaction again":
 * optimistic-check conflicts, PostgreSQL serialization failures and deadlocks, and unique
 * violations (two processes inserting the same balance row or clientOrderId at once: the retry
 * sees the winner's row).
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof ConcurrentUpdateError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return code === '40001' || code === '40P01' || code === '23505' || code === 'SQLITE_BUSY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Splits rows for multi-row inserts (SQLite caps bound parameters per statement). */
export function chunks<T>(rows: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

/** Jittered exponential backoff before retry `attempt` (1-based), capped at ~50 ms. */
export function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(50, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
