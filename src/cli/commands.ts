import type { Command } from 'commander';
import { registerLedgerCommands } from '../trading/cli.js';

/**
 * Commands contributed by features (keys, ledger, audit, …). Each feature adds one line here that
 * calls its own `register…Command(program)`.
 */
export function registerCommands(program: Command): void {
  registerLedgerCommands(program);
}
