import type { Kysely, Transaction } from 'kysely';
import { insertRows } from '../store/bulk.js';
import type { Database } from '../store/schema.js';
import { chunks, ConcurrentUpdateError } from './retry.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Row = { [column: string]: any };

/** Rows per statement: SQLite binds at most 32 766 parameters, PostgreSQL 65 535. */
const rowsPerStatement = (row: Row | undefined) => Math.max(1, Math.floor(30_000 / Math.max(1, Object.keys(row ?? {}).length)));

/**
 * Inserts or updates many rows in one statement per chunk. With `versioned`, a row that already
 * exists is only overwritten when its stored `version` is the new row's version − 1 (the version
 * this transaction read), and a row that was not written throws ConcurrentUpdateError: another
 * transaction changed it first. Rows must come sorted by key so that concurrent writers lock them
 * in the same order.
 */
export async function upsertRows(trx: Transaction<Database>, table: keyof Database & string, key: string[], rows: readonly object[], update: string[], options: { versioned: boolean }): Promise<void> {
  if (rows.length === 0) return;
  const db = trx as unknown as Kysely<Record<string, Row>>;
  const kind = `upsert ${table} on ${key.join(',')} set ${update.join(',')}${options.versioned ? ' versioned' : ''}`;
  for (const part of chunks(rows, rowsPerStatement(rows[0] as Row))) {
    const written = await insertRows(trx, kind, part, (values) =>
      db
        .insertInto(table)
        .values(values as Row[])
        .onConflict((oc) => {
          const set = oc.columns(key as never[]).doUpdateSet((eb) => Object.fromEntries(update.map((c) => [c, eb.ref(`excluded.${c}` as never)])) as never);
          return options.versioned ? set.where((eb) => eb(`${table}.version` as never, '=', eb(`excluded.version` as never, '-', 1 as never))) : set;
        }),
    );
    if (options.versioned && Number(written) !== part.length) {
      throw new ConcurrentUpdateError(`${table} (${part.length - Number(written)} of ${part.length} rows changed by another transaction)`);
    }
  }
}
