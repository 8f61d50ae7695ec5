import type { Command } from 'commander';
import { withExistingServices } from '../cli/index.js';
import type { Services } from '../services.js';
import type { VerifyReport } from './verify.js';

/**
 * `moondraft audit verify`: verifies the audit chain and its signed checkpoints offline, prints
 * the report and exits 1 when a record was changed, removed, reordered or inserted, or a signed
 * checkpoint does not verify. The verification is
 * itself recorded (`audit.read`, via `cli`).
 */
export async function auditVerify(services: Services, print: (line: string) => void, json: boolean): Promise<VerifyReport> {
  const report = await services.audit.verify();
  await services.audit.record({
    type: 'audit.read',
    actorId: null,
    details: { view: 'verify', via: 'cli', result: report.ok ? 'ok' : `broken at seq ${report.firstBroken!.seq} (${report.firstBroken!.reason})` },
  });
  if (json) print(JSON.stringify(report));
  else if (report.ok) print(`audit log OK: ${report.checked} records and ${report.checkpoints} signed checkpoints verified (head seq ${report.headSeq})`);
  else {
    const b = report.firstBroken!;
    print(`audit log BROKEN at seq ${b.seq}${b.id ? ` (${b.id})` : ''}: ${b.reason}: ${b.detail}`);
    print(`${report.checked} records checked before the break`);
  }
  return report;
}

export function registerAuditCommand(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('verify')
    .description('verify the hash chain and signed checkpoints; exits 1 when a record was changed, removed, reordered or inserted, or a checkpoint is invalid')
    .option('--json', 'print the report as JSON', false)
    .action(async (opts: { json: boolean }) => {
      const report = await withExistingServices((s) => auditVerify(s, (line) => console.log(line), opts.json));
      if (!report.ok) process.exitCode = 1;
    });
}
