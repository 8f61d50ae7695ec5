/**
 * A list route reads one row more than its page (`limit + 1`): whether another page follows, so
 * that `next` is null on the last page even when that page is exactly full.
 */
export function pageOf<T>(found: readonly T[], limit: number): { items: T[]; more: boolean } {
  return { items: found.slice(0, limit), more: found.length > limit };
}
