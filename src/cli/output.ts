import { writeSync } from 'node:fs';

/**
 * Output a command's caller must not lose (a new key spec). The write is synchronous and throws if
 * stdout cannot take it (a closed pipe, a full disk), so the command stops there; console.log
 * would swallow the error and go on. An object, so that tests can replace `write`.
 */
export const criticalStdout = {
  write(text: string): void {
    // write(2) may take fewer bytes than asked (a disk with less room left than the text, a
    // signal): the rest is written too, and a write that takes nothing stops the command, so a
    // truncated spec is never taken for a printed one.
    const bytes = Buffer.from(text, 'utf8');
    for (let offset = 0; offset < bytes.length; ) {
      const n = writeSync(1, bytes, offset, bytes.length - offset);
      if (n <= 0) throw Object.assign(new Error('stdout took none of the output'), { code: 'EIO' });
      offset += n;
    }
  },
};
