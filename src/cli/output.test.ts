import { describe, expect, it, vi } from 'vitest';

const writes: string[] = [];
let plan: ((text: string) => number)[] = [];
vi.mock('node:fs', async (original) => ({
  ...(await original<typeof import('node:fs')>()),
  writeSync: (_fd: number, data: string | Uint8Array, offset = 0, length?: number) => {
    const text = typeof data === 'string' ? data : Buffer.from(data).subarray(offset, length === undefined ? undefined : offset + length).toString('utf8');
    const next = plan.shift();
    if (!next) throw new Error('unexpected write');
    const n = next(text);
    writes.push(text.slice(0, n));
    return n;
  },
}));

const { criticalStdout } = await import('./output.js');

describe('criticalStdout', () => {
  it('a short write (a nearly full disk) is finished or fails: never a truncated spec and success', () => {
    const spec = 'v1:' + 'a'.repeat(64);
    // The kernel takes 10 bytes (all the room left), then refuses the rest.
    plan = [
      () => 10,
      () => {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    ];
    expect(() => criticalStdout.write(`${spec}\n`)).toThrow(/ENOSPC/);

    // A short write with room after it: the rest is written.
    writes.length = 0;
    plan = [() => 5, (t) => Buffer.byteLength(t)];
    criticalStdout.write(`${spec}\n`);
    expect(writes.join('')).toBe(`${spec}\n`);
  });
});
