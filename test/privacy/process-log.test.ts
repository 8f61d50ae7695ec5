import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * The process log (stdout, plain text, read by whoever runs the platform) never carries a client's
 * full address: the access line has none, and the security lines that name a client name its
 * network (/24 or /48), as the audit trail's access events do. The full address is in the
 * encrypted audit trail (auditors) and, for blocks, in the administrators' block list.
 */
describe('client addresses in the process log', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('a rate-limit suspension names the client network, not the address', async () => {
    server = await startTestServer({ env: { MOONDRAFT_RL_PUBLIC_PER_IP: '1', MOONDRAFT_RL_ABUSE_FACTOR: '2', MOONDRAFT_RL_PENALTY_GRACE_MS: '0' } });
    let code: string | undefined;
    for (let i = 0; i < 20 && code !== 'temporarily_suspended'; i++) {
      const res = await server.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: '198.51.100.77' });
      code = res.statusCode === 429 ? (res.json() as { code: string }).code : undefined;
    }
    expect(code).toBe('temporarily_suspended');
    const line = server.logs.find((l) => l.msg === 'rate limit: client suspended for abuse');
    expect(line).toBeDefined();
    expect(line!.subject).toBe('ip:198.51.100.0/24');
    expect(server.logText()).not.toContain('198.51.100.77');
  });

  it('an automatic IP block names the blocked network, not the address (IPv4 and IPv6)', async () => {
    server = await startTestServer({ env: { MOONDRAFT_DDOS_CLIENT_ERRORS_PER_SEC: '3' } });
    for (const remoteAddress of ['198.51.100.77', '2001:db8:abcd:12:1:2:3:4']) {
      for (let i = 0; i < 6; i++) await server.app.inject({ method: 'GET', url: '/api/v1/no-such-route', remoteAddress });
      expect((await server.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress })).json()).toMatchObject({ code: 'ip_blocked' });
    }
    await new Promise((r) => setTimeout(r, 50));
    const lines = server.logs.filter((l) => l.msg === 'ddos guard: address blocked');
    expect(lines.map((l) => l.target)).toEqual(['198.51.100.0/24', '2001:db8:abcd::/48']);
    expect(server.logText()).not.toContain('198.51.100.77');
    expect(server.logText()).not.toContain('2001:db8:abcd:12');
  });
});
