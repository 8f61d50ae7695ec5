import type { Command } from 'commander';
import { registerIdentityCommands } from '../security/identity/cli.js';
import { registerKeysCommands } from '../security/keys/cli.js';
import { registerAuditCommand } from '../audit/cli.js';
import { registerLedgerCommands } from '../trading/cli.js';

/**
 * Commands contributed by features (keys, ledger, audit, …). Each feature adds one line here that
 * calls its own `register…Command(program)`.
 */
export function registerCommands(program: Command): void {
  registerIdentityCommands(program);
  registerKeysCommands(program);
  registerAuditCommand(program);
  registerLedgerCommands(program);
}
