import { writeSync } from 'node:fs';

/**
 * Output a command's caller must not lose (a new key spec). The write is synchronous and throws if
 * stdout cannot take it (a closed pipe, a full disk), so the command stops there; console.log
 * would swallow the error and go on. An object, so that tests can replace `write`.
 */
export const criticalStdout = {
  write(text: string): void {
    writeSync(1, text);
  },
};
