import type { Store } from '../../store/db.js';
import { mayGoNegative } from './owners.js';

export interface VerifyReport {
  ok: boolean;
  /** The first violation found, in a fixed order of checks; absent when ok. */
  violation?: string;
  entries: number;
  postings: number;
  assets: number;
  balances: number;
  holds: number;
}

const PAGE = 5000;

/**
 * An amount column read strictly: a bigint (PostgreSQL's numeric, read as a decimal string) or the
 * decimal digits of a whole number of minor units, else a violation to report. A tampered SQLite
 * text column ("1.5", "0x10", "") is a finding, not a crash, and not read as something it is not
 * (BigInt would take "0x10" as 16 and "" as 0).
 */
function strictMinor(value: unknown, what: string): bigint | { violation: string } {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?[0-9]+$/.test(value)) return BigInt(value);
  return { violation: `${what} that is not a whole number of minor units: ${JSON.stringify(value)}` };
}

/**
 * Checks the ledger's invariants from the journal itself:
 *  1. every entry's lines sum to zero per asset (so every asset sums to zero overall);
 *  2. the balances table equals the sums of the postings, per owner, asset and bucket;
 *  3. no account (or the fee account) has a negative available or held balance;
 *  4. each held balance equals the sum of that owner's active holds; holds are never negative
 *     and closed holds hold nothing.
 * Reads in pages ordered by primary key, so it works on a live database (run it on a quiet one
 * for an exact answer: a commit between pages can show a transient mismatch).
 */
export async function verifyLedger(store: Store): Promise<VerifyReport> {
  const report: VerifyReport = { ok: true, entries: 0, postings: 0, assets: 0, balances: 0, holds: 0 };
  const failWith = (violation: string): VerifyReport => ({ ...report, ok: false, violation });

  const sums = new Map<string, { owner: string; asset: string; available: bigint; held: bigint }>();
  const perAsset = new Map<string, bigint>();
  let currentEntry: string | null = null;
  let entrySums = new Map<string, bigint>();
  const closeEntry = (): string | undefined => {
    if (currentEntry === null) return undefined;
    for (const [asset, sum] of entrySums) if (sum !== 0n) return `entry ${currentEntry} is unbalanced: its ${asset} lines sum to ${sum}, not 0`;
    return undefined;
  };

  let after: { entry: string; line: number } | null = null;
  for (;;) {
    let q = store.db.selectFrom('ledger_postings').select(['entry_id', 'line', 'owner', 'asset', 'bucket', 'amount']).orderBy('entry_id').orderBy('line').limit(PAGE);
    if (after) {
      const a = after;
      q = q.where((eb) => eb.or([eb('entry_id', '>', a.entry), eb.and([eb('entry_id', '=', a.entry), eb('line', '>', a.line)])]));
    }
    const rows = await q.execute();
    for (const r of rows) {
      if (r.entry_id !== currentEntry) {
        const bad = closeEntry();
        if (bad) return failWith(bad);
        currentEntry = r.entry_id;
        entrySums = new Map();
        report.entries++;
      }
      report.postings++;
      const amount = strictMinor(r.amount, `entry ${r.entry_id} line ${r.line} has an amount`);
      if (typeof amount !== 'bigint') return failWith(amount.violation);
      entrySums.set(r.asset, (entrySums.get(r.asset) ?? 0n) + amount);
      perAsset.set(r.asset, (perAsset.get(r.asset) ?? 0n) + amount);
      const k = `${r.owner}\u0001${r.asset}`;
      let s = sums.get(k);
      if (!s) sums.set(k, (s = { owner: r.owner, asset: r.asset, available: 0n, held: 0n }));
      if (r.bucket === 'held') s.held += amount;
      else if (r.bucket === 'available') s.available += amount;
      else return failWith(`entry ${r.entry_id} line ${r.line} has an unknown bucket ${JSON.stringify(r.bucket)}`);
    }
    if (rows.length < PAGE) break;
    const last = rows[rows.length - 1]!;
    after = { entry: last.entry_id, line: last.line };
  }
  const bad = closeEntry();
  if (bad) return failWith(bad);
  report.assets = perAsset.size;
  for (const [asset, sum] of [...perAsset].sort()) if (sum !== 0n) return failWith(`asset ${asset} does not sum to zero across all postings (sum ${sum})`);

  const table = await store.db.selectFrom('balances').select(['owner', 'asset', 'available', 'held']).orderBy('owner').orderBy('asset').execute();
  report.balances = table.length;
  const seen = new Set<string>();
  for (const row of table) {
    const k = `${row.owner}\u0001${row.asset}`;
    seen.add(k);
    const s = sums.get(k) ?? { available: 0n, held: 0n };
    const available = strictMinor(row.available, `balance of ${row.owner} in ${row.asset} has an available amount`);
    if (typeof available !== 'bigint') return failWith(available.violation);
    const held = strictMinor(row.held, `balance of ${row.owner} in ${row.asset} has a held amount`);
    if (typeof held !== 'bigint') return failWith(held.violation);
    if (available !== s.available || held !== s.held) {
      return failWith(`balance of ${row.owner} in ${row.asset} is available ${available} / held ${held} but its postings sum to ${s.available} / ${s.held}`);
    }
    if (!mayGoNegative(row.owner) && (available < 0n || held < 0n)) return failWith(`balance of ${row.owner} in ${row.asset} is negative (available ${available}, held ${held})`);
  }
  for (const [k, s] of [...sums].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!seen.has(k) && (s.available !== 0n || s.held !== 0n)) return failWith(`postings give ${s.owner} ${s.available} available / ${s.held} held ${s.asset} but the balances table has no row`);
  }

  const holds = await store.db.selectFrom('holds').select(['id', 'owner', 'asset', 'amount', 'status']).orderBy('id').execute();
  report.holds = holds.length;
  const heldByHolds = new Map<string, bigint>();
  for (const h of holds) {
    const amount = strictMinor(h.amount, `hold ${h.id} has an amount`);
    if (typeof amount !== 'bigint') return failWith(amount.violation);
    if (amount < 0n) return failWith(`hold ${h.id} is negative (${amount})`);
    if (h.status === 'closed' && amount !== 0n) return failWith(`hold ${h.id} is closed but still holds ${amount}`);
    if (h.status === 'active') {
      const k = `${h.owner}\u0001${h.asset}`;
      heldByHolds.set(k, (heldByHolds.get(k) ?? 0n) + amount);
    }
  }
  for (const [k, s] of [...sums].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const viaHolds = heldByHolds.get(k) ?? 0n;
    if (s.held !== viaHolds) return failWith(`held ${s.asset} of ${s.owner} is ${s.held} but its active holds add up to ${viaHolds}`);
  }
  for (const [k, amount] of heldByHolds) {
    if (!sums.has(k) && amount !== 0n) return failWith(`active holds of ${k.replace('\u0001', ' in ')} add up to ${amount} with no held balance`);
  }
  return report;
}
