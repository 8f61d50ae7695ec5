import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

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

/** CPU time of every thread of a process so far, in µs, by thread id (empty where /proc is not). */
export function threadsCpuMicros(pid: number | undefined): Map<number, number> {
  const out = new Map<number, number>();
  if (pid === undefined) return out;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const us = statMicros(`/proc/${pid}/task/${tid}/stat`);
    if (us !== undefined) out.set(Number(tid), us);
  }
  return out;
}

/** The thread (other than `exceptTid`) that used the most CPU between two `threadsCpuMicros` readings, and how much (µs). */
export function busiestThread(before: Map<number, number>, after: Map<number, number>, exceptTid: number | undefined): { tid: number; micros: number } | undefined {
  let best: { tid: number; micros: number } | undefined;
  for (const [tid, us] of after) {
    if (tid === exceptTid) continue;
    const used = us - (before.get(tid) ?? 0);
    if (!best || used > best.micros) best = { tid, micros: used };
  }
  return best;
}
