import type { Command } from 'commander';

/**
 * Commands contributed by features (keys, ledger, audit, …). Each feature adds one line here that
 * calls its own `register…Command(program)`.
 */
export function registerCommands(_program: Command): void {}
