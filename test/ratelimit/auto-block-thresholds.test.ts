import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * api-security.txt: "Automatic Blocking: Suspicious IPs automatically blacklisted" and "Attack
 * Detection" — in this server explainable thresholds (README: MOONDRAFT_DDOS_AUTH_FAILURES 20 per
 * MOONDRAFT_DDOS_AUTH_FAILURE_WINDOW_SEC 60, MOONDRAFT_DDOS_CLIENT_ERRORS_PER_SEC 30, blocks of
 * MOONDRAFT_DDOS_BLOCK_SEC 900). Their boundaries, windows and expiry, exactly, on a manual clock.
 */
describe('automatic IP blocks: thresholds, windows and expiry (embedded, manual clock)', () => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1, 12));
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  const forged = (ip: string) => server.app.inject({ method: 'GET', url: '/api/v1/account', remoteAddress: ip, headers: { authorization: 'Bearer aaa.bbb.ccc' } });
  const probe = async (ip: string) => {
    await server.services.audit.settle();
    return (await server.app.inject({ method: 'GET', url: '/api/v1/time', remoteAddress: ip })).statusCode;
  };
  /** Lets the guard's asynchronous counting (security-event subscribers) finish. */
  const settle = () => new Promise((r) => setTimeout(r, 50));

  it('19 failed authentications in the window do not block; the 20th does', async () => {
    const ip = '203.0.113.120';
    for (let i = 0; i < 19; i++) expect((await forged(ip)).statusCode).toBe(401);
    await settle();
    expect(await probe(ip)).toBe(200);
    expect((await forged(ip)).statusCode).toBe(401);
    await vi.waitFor(async () => expect(await probe(ip)).toBe(403));
    expect(server.services.ipBlocks.check(ip)).toMatchObject({ source: 'auto', reason: 'auth_failures', expiresAt: clock.now() + 900_000 });
  });

  it('failures spread wider than the window never add up to a block', async () => {
    const ip = '203.0.113.121';
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 19; i++) expect((await forged(ip)).statusCode).toBe(401);
      await settle();
      clock.advance(60_001);
    }
    expect(await probe(ip)).toBe(200);
    expect(server.services.ipBlocks.check(ip)).toBeUndefined();
  });

  it('an automatic block ends after MOONDRAFT_DDOS_BLOCK_SEC, to the millisecond', async () => {
    const ip = '203.0.113.122';
    for (let i = 0; i < 20; i++) await forged(ip);
    await vi.waitFor(async () => expect(await probe(ip)).toBe(403));
    clock.advance(900_000 - 1);
    expect(await probe(ip)).toBe(403);
    clock.advance(1);
    expect(await probe(ip)).toBe(200);
  });

  it('29 unauthenticated 4xx in a second do not block; the 30th does', async () => {
    const ip = '203.0.113.123';
    for (let i = 0; i < 29; i++) expect((await server.app.inject({ method: 'GET', url: `/api/v1/nope/${i}`, remoteAddress: ip })).statusCode).toBe(404);
    await settle();
    expect(server.services.ipBlocks.check(ip)).toBeUndefined();
    clock.advance(1001);
    // A second later the window is empty again: 29 more still do not block.
    for (let i = 0; i < 29; i++) await server.app.inject({ method: 'GET', url: `/api/v1/nope/${i}`, remoteAddress: ip });
    await settle();
    expect(server.services.ipBlocks.check(ip)).toBeUndefined();
    await server.app.inject({ method: 'GET', url: '/api/v1/nope/last', remoteAddress: ip });
    await vi.waitFor(() => expect(server.services.ipBlocks.check(ip)).toMatchObject({ source: 'auto', reason: 'client_errors' }));
  });
});
