import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { anonymizeIp } from '../../src/audit/anonymize.js';
import { writeDevCert } from '../../src/cli/dev-cert.js';
import { listen } from '../../src/http/listen.js';
import { freePort } from '../support/process.js';
import { startTestServer } from '../support/server.js';

/** Opens a connection and resolves once it is established, or with 'closed' if the server ends it first. */
function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Whether the server closes the socket within `ms` without any request sent. */
function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.on('error', () => {});
    socket.resume();
  });
}

describe('open connections per address (DDoS guard)', () => {
  it('a client that holds MOONDRAFT_DDOS_CONNECTIONS_PER_IP open (trickling nothing) has its next connection closed at once; closing one lets it in again', async () => {
    // The test's client is loopback, which is exempt by default: MOONDRAFT_DDOS_EXEMPT=none counts it.
    const server = await startTestServer({ env: { HOST: '127.0.0.1', PORT: '0', MOONDRAFT_DDOS_CONNECTIONS_PER_IP: '3', MOONDRAFT_DDOS_EXEMPT: 'none' } });
    const listening = await listen(server);
    const port = Number(new URL(listening.url).port);
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await connect(port));
      // Established connections the server has not closed: three slow clients.
      await new Promise((r) => setTimeout(r, 100));
      for (const s of held) expect(s.destroyed).toBe(false);
      const fourth = await connect(port);
      expect(await closedWithin(fourth, 2000)).toBe(true);
      const metrics = await server.services.metrics.text();
      expect(metrics).toMatch(/moondraft_connections_refused_total 1\b/);
      // In the audit trail's flood tally, as other refusals decided before any work are.
      await server.services.audit.settle();
      const refused = [];
      for await (const v of server.services.audit.export({ type: 'access.refused' })) refused.push([v.ip, v.details]);
      expect(refused).toEqual([['127.0.0.0/24', expect.objectContaining({ refusal: 'too_many_connections', status: null, count: 1 })]]);

      held.shift()!.destroy();
      await new Promise((r) => setTimeout(r, 100)); // the server sees the close
      const res = await fetch(`${listening.url}/api/v1/time`, { headers: { connection: 'close' } });
      expect(res.status).toBe(200);
    } finally {
      for (const s of held) s.destroy();
      await listening.stop();
    }
  });

  it('exempt addresses (loopback by default) are not counted', async () => {
    const server = await startTestServer({ env: { HOST: '127.0.0.1', PORT: '0', MOONDRAFT_DDOS_CONNECTIONS_PER_IP: '1' } });
    const listening = await listen(server);
    const port = Number(new URL(listening.url).port);
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await connect(port));
      expect(await closedWithin(held[2]!, 300)).toBe(false);
      expect((await fetch(`${listening.url}/api/v1/time`)).status).toBe(200);
    } finally {
      for (const s of held) s.destroy();
      await listening.stop();
    }
  });
  it('an IPv6 client refused past the cap is tallied under its network, not under no address', async () => {
    const server = await startTestServer({ env: { HOST: '::1', PORT: '0', MOONDRAFT_DDOS_CONNECTIONS_PER_IP: '1', MOONDRAFT_DDOS_EXEMPT: 'none' } });
    const listening = await listen(server);
    const port = Number(new URL(listening.url).port);
    const held: net.Socket[] = [];
    try {
      held.push(await connect(port, '::1'));
      const second = await connect(port, '::1');
      expect(await closedWithin(second, 2000)).toBe(true);
      await server.services.audit.settle();
      const refused = [];
      for await (const v of server.services.audit.export({ type: 'access.refused' })) refused.push([v.ip, v.details]);
      // The network an access record from ::1 names.
      expect(refused).toEqual([[anonymizeIp('::1'), expect.objectContaining({ refusal: 'too_many_connections', count: 1 })]]);
    } finally {
      for (const s of held) s.destroy();
      await listening.stop();
    }
  });

  it('the plain-HTTP redirect port and the metrics port count against the same cap (one server process)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'md-tls-'));
    const { certFile, keyFile } = await writeDevCert(dir, ['localhost', '127.0.0.1']);
    const redirectPort = await freePort();
    const metricsPort = await freePort();
    const server = await startTestServer({
      env: {
        HOST: '127.0.0.1',
        PORT: '0',
        MOONDRAFT_TLS_CERT: certFile,
        MOONDRAFT_TLS_KEY: keyFile,
        MOONDRAFT_HTTP_REDIRECT_PORT: String(redirectPort),
        MOONDRAFT_METRICS_PORT: String(metricsPort),
        MOONDRAFT_DDOS_CONNECTIONS_PER_IP: '2',
        MOONDRAFT_DDOS_EXEMPT: 'none',
      },
    });
    const listening = await listen(server);
    const held: net.Socket[] = [];
    try {
      // Slow clients on the redirect port hold what the cap allows, then are refused there...
      for (let i = 0; i < 2; i++) held.push(await connect(redirectPort));
      await new Promise((r) => setTimeout(r, 100));
      for (const s of held) expect(s.destroyed).toBe(false);
      expect(await closedWithin(await connect(redirectPort), 2000)).toBe(true);
      // ... and on the metrics port and the API port, as the cap is per address and process.
      expect(await closedWithin(await connect(metricsPort), 2000)).toBe(true);
      expect(await closedWithin(await connect(Number(new URL(listening.url).port)), 2000)).toBe(true);
      expect(await server.services.metrics.text()).toMatch(/moondraft_connections_refused_total 3\b/);
      held.shift()!.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const res = await fetch(`http://127.0.0.1:${redirectPort}/api/v1/time`, { redirect: 'manual', headers: { connection: 'close' } });
      expect(res.status).toBe(308);
    } finally {
      for (const s of held) s.destroy();
      await listening.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
