import type { Command } from 'commander';

/**
 * `moondraft ledger verify`: checks the ledger's invariants (see ledger/verify.ts) on the
 * configured database. Exit 0 and a summary when they hold; exit 1 and the first violation when
 * they do not.
 */
export function registerLedgerCommands(program: Command): void {
  const ledger = program.command('ledger').description('inspect the double-entry ledger');
  ledger
    .command('verify')
    .description('check every ledger invariant (balanced entries, balances = postings, nothing negative, held = holds); exit 1 on the first violation')
    .action(async () => {
      // Imported here: cli/index.ts imports this module through cli/commands.ts.
      const { withExistingServices } = await import('../cli/index.js');
      const report = await withExistingServices((s) => s.trading.ledger.verify());
      if (report.ok) {
        console.log(`ledger verified: ${report.entries} entries, ${report.postings} postings, ${report.assets} assets, ${report.balances} balances, ${report.holds} holds`);
        return;
      }
      console.error(`ledger violation: ${report.violation}`);
      process.exitCode = 1;
    });
}
