import { existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchModule, BenchRow } from './types.js';

/**
 * `npm run bench`: every benchmark of the project, one table, each figure beside its baseline
 * measured in the same run; results also go to bench/results.json. `npm run bench -- NAME…` runs
 * only those modules.
 */
const MODULES = ['identity', 'keys', 'ratelimit', 'audit', 'trading', 'withdrawals', 'pipeline'];

const here = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const results: { module: string; rows: BenchRow[] }[] = [];

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

for (const name of MODULES) {
  if (only.length > 0 && !only.includes(name)) continue;
  const file = path.join(here, `${name}.ts`);
  if (!existsSync(file)) continue;
  process.stderr.write(`running ${name}…\n`);
  const mod = (await import(file)) as BenchModule;
  results.push({ module: name, rows: await mod.run() });
}

const lines: string[] = [];
lines.push(`machine: ${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
lines.push('');
lines.push('| benchmark | result | baseline (same run) | ratio |');
lines.push('| --- | ---: | ---: | ---: |');
for (const { module, rows } of results) {
  for (const r of rows) {
    const base = r.baseline ? `${fmt(r.baseline.value)} ${r.unit} (${r.baseline.name})` : '—';
    // Always result ÷ baseline; for times and costs (better: 'lower') a ratio above 1 is worse, and says so.
    const ratio = r.baseline && r.baseline.value > 0 ? `${(r.value / r.baseline.value).toFixed(2)}×${r.better === 'lower' ? ' (lower is better)' : ''}` : '—';
    const label = r.name.startsWith(`${module}: `) ? r.name : `${module}: ${r.name}`;
    lines.push(`| ${label} | ${fmt(r.value)} ${r.unit} | ${base} | ${ratio} |${r.note ? ` ${r.note}` : ''}`);
  }
}
console.log(lines.join('\n'));
writeFileSync(path.join(here, 'results.json'), `${JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: os.cpus().length, results }, null, 2)}\n`);
