import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

const root = path.resolve(import.meta.dirname, '../..');

export interface ChildServer {
  url: string;
  child: ChildProcess;
  /** Resolves with the exit code / signal once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  logs: string[];
}

/**
 * Starts the real server (`node --import tsx src/main.ts`) as a child process on a free port and
 * resolves once it logs `moondraft listening`, with the URL it logged. `nodeArgs` go to node
 * itself (e.g. `--cpu-prof` for a benchmark). `keepLogs: false` stops reading stdout once the
 * server listens (stderr is still kept).
 */
export function startChildServer(env: Record<string, string>, timeoutMs = 60_000, nodeArgs: readonly string[] = [], options: { keepLogs?: boolean } = {}): Promise<ChildServer> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', path.join(root, 'src/main.ts')], {
    cwd: root,
    env: { ...process.env, PORT: '0', MOONDRAFT_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within ${timeoutMs} ms:\n${logs.slice(-20).join('\n')}`));
    }, timeoutMs);
    createInterface({ input: child.stderr! }).on('line', (line) => logs.push(line));
    const stdout = createInterface({ input: child.stdout! });
    stdout.on('line', (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'moondraft listening' && entry.url) {
          clearTimeout(timer);
          if (options.keepLogs === false) {
            // From here on stdout is drained unread: a benchmark's load generator, in this process,
            // must not spend its time parsing the server's access log.
            stdout.close();
            child.stdout!.resume();
          }
          resolve({ url: entry.url, child, exited, logs });
        }
      } catch {
        // not a log line
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${code}, signal ${signal}) before listening:\n${logs.slice(-20).join('\n')}`));
    });
  });
}
