import { CompiledQuery, type Compilable, type Insertable, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Row = { [column: string]: any };
type Db = Kysely<Database> | Transaction<Database>;

/** SQL of one statement shape, and the parameters Kysely put after the rows' values (constants of the statement). */
interface Shape {
  sql: string;
  trailing: readonly unknown[];
}

const MAX_SHAPES = 2000;
/**
 * Compiled shapes per database (its dialect adapter, shared by its transactions: SQL differs by
 * dialect); null marks a shape whose parameters are not simply its rows' values (always compiled).
 */
const shapesByDb = new WeakMap<object, Map<string, Shape | null>>();

function shapesOf(db: Db): Map<string, Shape | null> {
  const adapter = db.getExecutor().adapter;
  let shapes = shapesByDb.get(adapter);
  if (!shapes) shapesByDb.set(adapter, (shapes = new Map()));
  return shapes;
}

/** Every row's columns, in order, when all rows have the same ones and no value is undefined. */
function columnsOf(rows: readonly Row[]): string[] | undefined {
  const columns = Object.keys(rows[0]!);
  for (const row of rows) {
    const keys = Object.keys(row);
    if (keys.length !== columns.length) return undefined;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== columns[i] || row[keys[i]!] === undefined) return undefined;
  }
  return columns;
}

/** A value Kysely does not bind but builds into the SQL: an expression (`sql`…``, `eb.ref`) or a factory of one. */
function isExpression(v: unknown): boolean {
  return typeof v === 'function' || (typeof v === 'object' && v !== null && typeof (v as { toOperationNode?: unknown }).toOperationNode === 'function');
}

/** The rows' values in row order (then `trailing`), or undefined if one is an expression. */
function valuesOf(rows: readonly Row[], columns: readonly string[], trailing: readonly unknown[]): unknown[] | undefined {
  const out = new Array<unknown>(rows.length * columns.length + trailing.length);
  let i = 0;
  for (const row of rows) {
    for (const c of columns) {
      const v = row[c];
      if (isExpression(v)) return undefined;
      out[i++] = v;
    }
  }
  for (const t of trailing) out[i++] = t;
  return out;
}

/**
 * Runs a multi-row insert that Kysely builds, but has Kysely build and compile it only once per
 * shape: statement `kind` (its table and clauses), columns and row count. Group commits write the
 * same few statements with new values all the time, and building a statement of hundreds of
 * values cost more than running it. A shape is reused only after checking, on its first use, that
 * its compiled parameters are exactly its rows' values in row order (plus constants after them);
 * otherwise it is always compiled anew. A call whose values include an expression, or through a
 * Kysely instance with plugins, is always built and compiled. Returns the number of rows inserted
 * or updated.
 */
export async function insertRows<R extends object>(db: Db, kind: string, rows: readonly R[], build: (rows: R[]) => Compilable): Promise<bigint> {
  if (rows.length === 0) return 0n;
  const all = rows as unknown as readonly Row[];
  const columns = columnsOf(all);
  // Plugins (withPlugin) transform each query: a query through them is always built and compiled.
  const key = columns && db.getExecutor().plugins.length === 0 ? `${kind}\u0000${columns.join(',')}\u0000${rows.length}` : undefined;
  const shapes = shapesOf(db);
  const shape = key === undefined ? null : shapes.get(key);
  const reused = shape ? valuesOf(all, columns!, shape.trailing) : undefined;
  let query: CompiledQuery;
  if (shape && reused) {
    query = CompiledQuery.raw(shape.sql, reused);
  } else {
    query = build(rows as R[]).compile();
    if (key !== undefined && shape === undefined) {
      const values = valuesOf(all, columns!, []);
      const plain = values !== undefined && values.every((v, i) => query.parameters[i] === v);
      if (shapes.size >= MAX_SHAPES) shapes.delete(shapes.keys().next().value!);
      shapes.set(key, plain ? { sql: query.sql, trailing: query.parameters.slice(values.length) } : null);
    }
  }
  const result = await db.executeQuery(query);
  return result.numAffectedRows ?? 0n;
}

/** Inserts `rows` into `table`, `perStatement` rows a statement (SQLite caps bound parameters), through insertRows. */
export async function insertAll<T extends keyof Database & string>(db: Db, table: T, rows: readonly Insertable<Database[T]>[], perStatement: number): Promise<void> {
  const untyped = db as unknown as Kysely<Record<string, Row>>;
  for (let i = 0; i < rows.length; i += perStatement) {
    await insertRows(db, `insert ${table}`, rows.slice(i, i + perStatement), (part) => untyped.insertInto(table).values(part as Row[]));
  }
}
