import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a /proc stat file, in µs (undefined when it cannot be read). */
function statMicros(file: string): number | undefined {
  try {
    const fields = readFileSync(file, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of stat; here counted after "pid (comm) ".
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * CPU time a process has used so far, in µs (Linux /proc; undefined elsewhere). Requests per second
 * move with whatever else the machine runs; CPU per request is the steadier figure of the two.
 */
export function cpuMicros(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : statMicros(`/proc/${pid}/stat`);
}

/**
 * CPU time of one thread of a process so far, in µs. A process's main thread has the process id
 * as its thread id: for a server, the thread that answers HTTP.
 */
export function threadCpuMicros(pid: number | undefined, tid: number | undefined = pid): number | undefined {
  return pid === undefined || tid === undefined ? undefined : statMicros(`/proc/${pid}/task/${tid}/stat`);
}
