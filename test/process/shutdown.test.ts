import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createServices } from '../../src/services.js';
import pg from 'pg';
import { startServerProcess } from '../support/process.js';
import { PG_URL, serviceAvailable } from '../support/services.js';

/**
 * A POST whose headers and first half of the body are sent: the request is in flight until
 * `finish` sends the rest. `answer` resolves with everything the server wrote once it closes.
 */
async function inFlightRequest(url: string): Promise<{ finish(): void; answer: Promise<string> }> {
  const { port } = new URL(url);
  const body = JSON.stringify({ probe: 'x'.repeat(200) });
  const socket = net.connect(Number(port), '127.0.0.1');
  await new Promise<void>((r) => socket.once('connect', () => r()));
  let response = '';
  socket.on('data', (d) => (response += d));
  const answer = new Promise<string>((r) => socket.once('close', () => r(response)));
  socket.write(`POST /api/v1/in-flight HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 100)}`);
  return { finish: () => void socket.write(body.slice(100)), answer };
}

/** The routes of the access events in the audit trail of the (stopped) server's data dir. */
async function accessRoutesIn(dataDir: string): Promise<unknown[]> {
  const services = await createServices(loadConfig({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_LOG_LEVEL: 'silent' }), { processMetrics: false });
  try {
    const routes: unknown[] = [];
    for await (const view of services.audit.export({ type: 'access.request' })) routes.push(view.details?.route);
    return routes;
  } finally {
    await services.close();
  }
}

const pgUp = await serviceAvailable('postgres');

describe('graceful shutdown', () => {
  it('on SIGTERM stops accepting, finishes the in-flight request, then exits 0', async () => {
    const server = await startServerProcess({ MOONDRAFT_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'md-shutdown-')) });
    const { port } = new URL(server.url);
    // Headers and half the body: the request is in flight when the signal arrives.
    const request = await inFlightRequest(server.url);
    await new Promise((r) => setTimeout(r, 200));
    const exit = server.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    // New connections are refused while the old request is still being served.
    await expect(
      new Promise((resolve, reject) => {
        const probe = net.connect(Number(port), '127.0.0.1');
        probe.once('connect', () => {
          probe.destroy();
          resolve('connected');
        });
        probe.once('error', reject);
      }),
    ).rejects.toThrow(/ECONNREFUSED/);
    request.finish();
    const response = await request.answer;
    expect(response).toMatch(/^HTTP\/1\.1 404 /);
    expect(response).toContain('"code":"not_found"');
    expect(await exit).toBe(0);
    expect(server.output()).toContain('shutting down');
  });

  it('a second signal while draining changes nothing: the in-flight request is still answered, then exit 0', async () => {
    // Ctrl-C on `npm start` can deliver SIGINT twice: the terminal signals every process of the
    // foreground group, and npm forwards its own to the server. A handler registered once left the
    // second to Node's default action, which killed the server mid-drain (exit by signal, the
    // request unanswered, buffered audit events lost).
    const server = await startServerProcess({ MOONDRAFT_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'md-shutdown-twice-')) });
    const request = await inFlightRequest(server.url);
    await new Promise((r) => setTimeout(r, 200));
    const exit = server.stop('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    server.child.kill('SIGINT');
    server.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    request.finish();
    expect(await request.answer).toMatch(/^HTTP\/1\.1 404 /);
    expect(await exit).toBe(0);
  });

  it('log lines reach standard output within a fraction of a second with no more traffic, and all of them by the exit', async () => {
    const server = await startServerProcess({ MOONDRAFT_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'md-logflush-')) });
    // The log is buffered (a line is not its own write): one request's access line, alone, must
    // still come out promptly, written by the periodic flush.
    const time = await fetch(`${server.url}/api/v1/time`);
    expect(time.status).toBe(200);
    const accessLines = () => server.output().split('\n').filter((l) => l.includes('"msg":"request"') && l.includes('/api/v1/time')).length;
    const until = Date.now() + 2_000;
    while (accessLines() < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(accessLines()).toBe(1);
    // A burst just before the signal: every line is written out before the process exits.
    await Promise.all(Array.from({ length: 20 }, () => fetch(`${server.url}/api/v1/time`).then((r) => r.text())));
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(accessLines()).toBe(21);
    expect(server.output()).toContain('shutting down');
  });

  it('a request that never finishes arriving does not hold the drain past its grace: its connection is ended, the audit events still buffered are written, exit 0', async () => {
    // A client trickling its body in (or a handler that hangs) held the drain until serve's forced
    // exit at 15 s, which skipped closing the services: access events still in the buffer were lost.
    const dataDir = mkdtempSync(path.join(tmpdir(), 'md-shutdown-stuck-'));
    const server = await startServerProcess({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_AUDIT_FLUSH_MS: '600000' });
    expect((await fetch(`${server.url}/api/v1/time`)).status).toBe(200);
    const request = await inFlightRequest(server.url); // never finished
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(14_000);
    await request.answer;
    expect(server.output()).toContain('ending the connections of requests still in flight');
    // The access event of the answered request, buffered until the stop, is in the audit trail.
    expect(await accessRoutesIn(dataDir)).toContain('/api/v1/time');
  }, 40_000);

  it('SIGHUP with its terminal gone (standard output and error closed) drains as SIGTERM does: the buffered audit events are written, then it ends by that signal', async () => {
    // Closing the terminal of `npm start` sends SIGHUP, whose default action ended the process at
    // once: access events still in the buffer were lost. With the terminal gone, every log line
    // written while stopping fails (EPIPE here, EIO on a closed tty): that must not end it either
    // (test/observability/logging.test.ts). Once drained it ends by the hangup's default action.
    const dataDir = mkdtempSync(path.join(tmpdir(), 'md-shutdown-hup-'));
    const server = await startServerProcess({ MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_AUDIT_FLUSH_MS: '600000' });
    expect((await fetch(`${server.url}/api/v1/time`)).status).toBe(200);
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => server.child.once('exit', (code, signal) => r({ code, signal })));
    server.child.stdout!.destroy();
    server.child.stderr!.destroy();
    await new Promise((r) => setTimeout(r, 100));
    server.child.kill('SIGHUP');
    expect(await exit).toEqual({ code: null, signal: 'SIGHUP' });
    expect(await accessRoutesIn(dataDir)).toContain('/api/v1/time');
  }, 40_000);

  it.skipIf(!pgUp)('a shutdown that cannot finish within 15 s exits 1 saying why and what is lost', async () => {
    // The database stops answering the audit writes (a table lock held here): closing the services
    // waits on the statement deadline (30 s), so the forced exit at 15 s fires. It exited 1 with
    // not a line about it: the operator could not tell a forced exit, nor that the buffered audit
    // events were lost.
    const schema = `md_forced_exit_${process.pid}`;
    const server = await startServerProcess({ DATABASE_URL: PG_URL, MOONDRAFT_PG_SCHEMA: schema, MOONDRAFT_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'md-forced-')), MOONDRAFT_AUDIT_FLUSH_MS: '600000' });
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      expect((await fetch(`${server.url}/api/v1/time`)).status).toBe(200);
      await admin.query('begin');
      await admin.query(`lock table ${schema}.audit_events in access exclusive mode`);
      const started = Date.now();
      expect(await server.stop('SIGTERM')).toBe(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(14_000);
      expect(server.output()).toContain('shutdown did not finish within 15 s');
    } finally {
      await admin.query('rollback').catch(() => undefined);
      await admin.query(`drop schema if exists ${schema} cascade`);
      await admin.end();
    }
  }, 60_000);
});
