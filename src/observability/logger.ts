import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Field names whose values are never logged, at any depth. `rawPacket` is what Node's HTTP parser
 * attaches to the error of a request it refuses: the bytes received, headers and body included.
 */
const SECRET_FIELD = /secret|passw(or)?d|private.?key|refresh.?token|access.?token|^token$|jwt|signature|authorization|cookie|api.?key|mnemonic|seed|master.?key|credential|raw.?packet|(database|redis|pg).?url|connection.?string/i;
export const REDACTED = '[redacted]';
const TRUNCATED = '[truncated]';

/**
 * Deep copy with every secret-named field replaced; bounded depth so hostile shapes stay cheap.
 * Structure below that depth is cut (it was not searched, so it is not logged). An error, wherever
 * it sits (under `err`, inside another error's fields, under any other name), becomes what pino's
 * error serializer makes of it (type, message, stack, its own fields), redacted by the same rule:
 * left as an Error, it would be written by JSON.stringify, own fields and all, unsearched.
 */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8) return TRUNCATED;
  if (value instanceof Error) return redactDeep({ ...pino.stdSerializers.err(value) }, depth);
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELD.test(k) ? REDACTED : redactDeep(v, depth + 1);
  return out;
}

/**
 * pino JSON logs. Header secrets are censored by path (fast); every other field named like a
 * secret is censored by a deep walk of the log object. Request logs carry the route pattern, never
 * the raw URL, so nothing a client put in a path or query string reaches the log.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'moondraft' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["x-api-signature"]',
          'req.headers["x-api-key"]',
          'res.headers["set-cookie"]',
        ],
        censor: REDACTED,
      },
      formatters: {
        log: (obj) => redactDeep(obj) as Record<string, unknown>,
      },
      serializers: {
        // The formatter above has already serialized and redacted every error in the log object;
        // pino's own error serializer must not run again on that copy (it would call it an Object).
        // An Error that reaches here without the formatter (a child logger's bindings) is treated
        // by the same rule.
        err: (err: unknown) => (err instanceof Error ? redactDeep(err) : err),
      },
    },
    destination,
  );
}

/** How often the server's buffered log output is written out at the latest. */
export const LOG_FLUSH_INTERVAL_MS = 100;

/**
 * Where `serve` writes its log: standard output, buffered. Unbuffered, every request's access line
 * is its own write to the pipe a deployment reads logs from (journald, a container runtime), each
 * handed to the thread pool and waking the reader; here lines are written 4 KiB at a time, and at
 * least every LOG_FLUSH_INTERVAL_MS. At exit (a signal's graceful stop, a crash) pino writes what
 * is left; only a process killed outright loses its last fraction of a second of log lines. The
 * audit trail, not the log, is the durable record.
 */
export function bufferedStdout(): Destination {
  return outlivesItsReader(pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: LOG_FLUSH_INTERVAL_MS }));
}

type Destination = ReturnType<typeof pino.destination>;

/**
 * A log output that goes away ends the logging, not the process. A closed terminal (what SIGHUP
 * announces) fails every write with EIO, a reader that exited with EPIPE, a full disk with ENOSPC.
 * pino only forgives EPIPE: any other write error was an unhandled 'error' event that crashed the
 * server, in the middle of its graceful stop, so the audit events it still held were lost. And
 * the flush at exit retried such an error for ever (sonic-boom before 5, whose flushSync now
 * throws it instead: caught here). From the first error on, log lines are dropped; the audit
 * trail, not the log, is the durable record.
 */
export function outlivesItsReader<T extends Destination>(stream: T): T {
  let gone = false;
  const drop = () => {
    if (gone) return;
    gone = true;
    stream.write = () => true;
    stream.flush = (cb?: (err?: Error) => void) => void cb?.();
    stream.flushSync = () => undefined;
    stream.end = () => undefined;
  };
  stream.on('error', drop);
  const flushSync = stream.flushSync.bind(stream);
  stream.flushSync = () => {
    try {
      flushSync();
    } catch {
      drop();
    }
  };
  return stream;
}

/**
 * Where the one-off CLI commands write their log: standard error, unbuffered. Their standard output
 * is the command's own answer (`audit verify --json`, the spec `keys rotate-master` prints), which
 * scripts parse or capture; a log line there would corrupt it.
 */
export function stderrLog(): DestinationStream {
  return outlivesItsReader(pino.destination({ dest: 2, sync: true }));
}
