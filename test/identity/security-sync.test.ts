import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../src/cli/index.js';
import { ManualClock } from '../../src/lib/clock.js';
import { SecuritySync } from '../../src/security/identity/security-sync.js';
import type { SharedState } from '../../src/state/port.js';
import { sessionFor } from '../support/auth.js';
import { serviceAvailable } from '../support/services.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { signInEthereum } from '../support/wallet.js';

async function account(server: TestServer, s: { headers: { authorization: string } }) {
  const res = await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: s.headers });
  return { status: res.statusCode, code: res.json().code as string | undefined, role: res.json().role as string | undefined };
}

/** Runs the `moondraft` CLI in-process against a data dir, as an operator would on the host. */
async function cli(dataDir: string, ...args: string[]) {
  const saved = process.env.MOONDRAFT_DATA_DIR;
  process.env.MOONDRAFT_DATA_DIR = dataDir;
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await buildProgram().exitOverride().parseAsync(['node', 'moondraft', ...args]);
    return log.mock.calls.map((c) => c.join(' ')).join('\n');
  } finally {
    log.mockRestore();
    if (saved === undefined) delete process.env.MOONDRAFT_DATA_DIR;
    else process.env.MOONDRAFT_DATA_DIR = saved;
  }
}

describe('revocations and role changes survive restarts and reach every process (embedded, SQLite file)', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-sync-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('a revoked token stays refused after the server restarts on the same data dir', async () => {
    const first = await startTestServer({ sqliteFile: true, dataDir });
    const revoked = await signInEthereum(first);
    const kept = await signInEthereum(first);
    await first.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: revoked.headers });
    expect((await account(first, revoked)).code).toBe('token_revoked');
    await first.close();

    const second = await startTestServer({ sqliteFile: true, dataDir });
    try {
      // The in-process revocation set started empty; the start-up sync refilled it from the database.
      expect(await second.services.state.get(`sess:revoked:${revoked.sessionId}`)).not.toBeNull();
      expect((await account(second, revoked)).code).toBe('token_revoked');
      expect((await account(second, kept)).status).toBe(200);
    } finally {
      await second.close();
    }
  });

  it('a role set by the offline CLI (database only) applies once the sync has run', async () => {
    const server = await startTestServer({ sqliteFile: true, dataDir });
    try {
      const s = await signInEthereum(server);
      expect((await account(server, s)).role).toBe('trader');
      const out = await cli(dataDir, 'role', s.wallet.address, 'auditor');
      expect(out).toContain('is now auditor');
      await server.services.securitySync.runOnce();
      expect((await account(server, s)).role).toBe('auditor');
    } finally {
      await server.close();
    }
  });

  it('a session revoked by another process on the same database is refused here after the sync', async () => {
    const a = await startTestServer({ sqliteFile: true, dataDir });
    const b = await startTestServer({ sqliteFile: true, dataDir });
    try {
      const s = await signInEthereum(a);
      expect((await account(b, s)).status).toBe(200);
      await a.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers });
      const found = await b.services.securitySync.runOnce();
      expect(found.revocations).toBeGreaterThanOrEqual(1);
      expect((await account(b, s)).code).toBe('token_revoked');
    } finally {
      await b.close();
      await a.close();
    }
  });
});

describe('security sync window', () => {
  const clock = new ManualClock(Date.UTC(2026, 8, 1));
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ clock });
  });
  afterAll(() => server.close());

  const freshSync = () => {
    const { store, state, sessions, log } = server.services;
    return new SecuritySync({ store, state, clock, sessions, log, windowMs: 3_630_000, intervalMs: 5_000 });
  };

  it('passes after the first read only recent rows; a start-up pass reads one token lifetime back', async () => {
    const s = await signInEthereum(server);
    clock.advance(1_000);
    await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers });
    expect((await server.services.securitySync.runOnce()).revocations).toBe(1);
    // Each pass re-reads a one-minute overlap (rows stamped by another process's clock), then no more.
    clock.advance(30_000);
    expect((await server.services.securitySync.runOnce()).revocations).toBe(1);
    clock.advance(120_000);
    await server.services.securitySync.runOnce();
    expect((await server.services.securitySync.runOnce()).revocations).toBe(0);
    // A restarted process looks back a whole token lifetime…
    expect((await freshSync().runOnce()).revocations).toBe(1);
    // …and no further: past it, every token of the session has expired anyway.
    clock.advance(3_630_000);
    expect((await freshSync().runOnce()).revocations).toBe(0);
  });

  it('after the clock steps back (NTP), a pass still finds what was written since, stamped by the stepped-back clock', async () => {
    const s = await signInEthereum(server);
    await server.services.securitySync.runOnce();
    expect((await account(server, s)).role).toBe('trader');
    // The host's clock is stepped back ten minutes; the offline CLI (database only) then changes the
    // role, its row stamped by the same, stepped-back clock, and the server's next pass runs.
    clock.advance(-600_000);
    await server.services.store.db.updateTable('accounts').set({ role: 'auditor', updated_at: clock.now() }).where('id', '=', s.account.id).execute();
    clock.advance(5_000);
    expect((await server.services.securitySync.runOnce()).roles).toBeGreaterThanOrEqual(1);
    expect((await account(server, s)).role).toBe('auditor');
  });
});

/**
 * A scale-out server (PostgreSQL and Redis) for one describe block, with a trader to log out, one to
 * demote and an admin; `skip` when the services are not there.
 */
function scaleoutSuite(clock: ManualClock) {
  const suite = { skip: false } as { skip: boolean; server: TestServer; people(): Promise<{ loggedOut: Awaited<ReturnType<typeof signInEthereum>>; demoted: Awaited<ReturnType<typeof signInEthereum>>; admin: Awaited<ReturnType<typeof sessionFor>> }> };
  suite.people = async () => ({ loggedOut: await signInEthereum(suite.server), demoted: await signInEthereum(suite.server), admin: await sessionFor(suite.server, { role: 'admin' }) });
  beforeAll(async () => {
    suite.skip = !((await serviceAvailable('postgres')) && (await serviceAvailable('redis')));
    if (!suite.skip) suite.server = await startTestServer({ backend: 'scaleout', clock });
  });
  afterAll(async () => {
    if (!suite.skip) await suite.server.close();
  });
  return suite;
}

describe('shared state lost (Redis restarted empty) on scale-out', () => {
  const clock = new ManualClock(Date.now());
  const suite = scaleoutSuite(clock);

  it('the next sync pass restores revocations and role changes older than its overlap', async ({ skip: skipTest }) => {
    if (suite.skip) return skipTest();
    const { server } = suite;
    const { loggedOut, demoted, admin } = await suite.people();
    await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: loggedOut.headers });
    await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${demoted.wallet.address}/role`, headers: admin.headers, payload: { role: 'developer' } });
    await server.services.securitySync.runOnce();
    expect((await account(server, loggedOut)).code).toBe('token_revoked');
    expect((await account(server, demoted)).role).toBe('developer');

    // Ten minutes later Redis restarts with nothing in it (no persistence, or a failover).
    clock.advance(600_000);
    await server.services.securitySync.runOnce();
    const state = server.services.state;
    for (const key of await state.keys('')) await state.del(key);

    await server.services.securitySync.runOnce();
    expect((await account(server, loggedOut)).code).toBe('token_revoked');
    expect((await account(server, demoted)).role).toBe('developer');
  });
});

describe('shared state rolled back (Redis restarted from an older snapshot, or a lagging replica promoted) on scale-out', () => {
  const clock = new ManualClock(Date.now());
  const suite = scaleoutSuite(clock);

  it('the next sync pass restores what was written after the snapshot, though the snapshot holds a sync marker', async ({ skip: skipTest }) => {
    if (suite.skip) return skipTest();
    const { server } = suite;
    const { loggedOut, demoted, admin } = await suite.people();
    await server.services.securitySync.runOnce();
    // Redis persists a snapshot (RDB) now: everything it holds, the sync marker included.
    const state = server.services.state;
    const snapshot = new Map<string, string>();
    for (const key of await state.keys('')) {
      const value = await state.get(key);
      if (value !== null) snapshot.set(key, value);
    }

    clock.advance(1_000);
    await server.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: loggedOut.headers });
    await server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${demoted.wallet.address}/role`, headers: admin.headers, payload: { role: 'developer' } });
    expect((await account(server, loggedOut)).code).toBe('token_revoked');
    expect((await account(server, demoted)).role).toBe('developer');
    // Ten minutes of passes later, Redis restarts and loads that older snapshot.
    for (let i = 0; i < 10; i++) {
      clock.advance(60_000);
      await server.services.securitySync.runOnce();
    }
    for (const key of await state.keys('')) await state.del(key);
    for (const [key, value] of snapshot) await state.set(key, value, 3_600_000);
    // The request itself finds its marker rolled back and has the sync put back what came later
    // (see test/faults/redis-loss.test.ts); a pass of the timer would do the same.
    await server.services.securitySync.runOnce();
    expect((await account(server, loggedOut)).code).toBe('token_revoked');
    expect((await account(server, demoted)).role).toBe('developer');
  });
});

describe('a sync pass racing a role change', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it('never puts back the role a concurrent change replaced', async () => {
    const admin = await sessionFor(server, { role: 'admin' });
    // Promoted by mistake a moment ago: the row is recent, so every pass re-publishes it.
    const promoted = await sessionFor(server, { role: 'admin' });
    const { store, state, clock, sessions, log, accounts } = server.services;
    let demotion: Promise<{ statusCode: number }> | undefined;
    let doneBeforeWrite = false;
    // The demotion is asked for between the pass reading the role and writing what it read: it
    // cannot commit until that write is done (the pass holds the row's share lock), so its own
    // write comes last.
    const racing: SharedState = Object.create(state, {
      set: {
        value: async (key: string, value: string, ttlMs?: number) => {
          if (key === `acct:role:${promoted.account.id}` && !demotion) {
            demotion = server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${promoted.account.wallet}/role`, headers: admin.headers, payload: { role: 'trader' } });
            void demotion.then(() => (doneBeforeWrite = true));
            await new Promise((r) => setTimeout(r, 200));
          }
          return state.set(key, value, ttlMs);
        },
      },
    });
    await new SecuritySync({ store, state: racing, clock, sessions, log, windowMs: 3_630_000, intervalMs: 5_000 }).runOnce();
    expect(demotion).toBeDefined();
    expect(doneBeforeWrite).toBe(false);
    expect((await demotion!).statusCode).toBe(200);
    expect((await accounts.byId(promoted.account.id))?.role).toBe('trader');
    const res = await server.app.inject({ method: 'GET', url: '/api/v1/admin/ip-blocks', headers: promoted.headers });
    expect(res.json().code).toBe('forbidden_role');
  });
});

describe('two role changes racing on two scale-out servers', () => {
  let a: TestServer;
  let b: TestServer;
  let skip = false;
  const isolation = newIsolation();
  beforeAll(async () => {
    skip = !((await serviceAvailable('postgres')) && (await serviceAvailable('redis')));
    if (skip) return;
    a = await startTestServer({ backend: 'scaleout', isolation });
    b = await startTestServer({ backend: 'scaleout', isolation, dataDir: a.dataDir });
  });
  afterAll(async () => {
    if (skip) return;
    await b.close();
    await a.close();
    await dropSchema(isolation.pgSchema);
  });

  it('every server honours the role committed last, whichever change wrote shared state last', async ({ skip: skipTest }) => {
    if (skip) return skipTest();
    const admin = await sessionFor(a, { role: 'admin' });
    const target = await signInEthereum(a);
    const setRole = (server: TestServer, role: string) =>
      server.app.inject({ method: 'PUT', url: `/api/v1/admin/accounts/${target.account.wallet}/role`, headers: admin.headers, payload: { role } });
    // A promotes, B demotes right after, while A's write to shared state is slow: B cannot commit
    // until A's write is done (A publishes under the row's share lock), so B's write lands last.
    const state = a.services.state;
    const set = state.set.bind(state);
    let demotion: Promise<{ statusCode: number }> | undefined;
    let doneBeforeWrite = false;
    state.set = async (key: string, value: string, ttlMs?: number) => {
      if (key === `acct:role:${target.account.id}` && value === 'admin' && !demotion) {
        demotion = setRole(b, 'trader');
        void demotion.then(() => (doneBeforeWrite = true));
        await new Promise((r) => setTimeout(r, 200));
      }
      return set(key, value, ttlMs);
    };
    try {
      expect((await setRole(a, 'admin')).statusCode).toBe(200);
    } finally {
      state.set = set;
    }
    expect(demotion).toBeDefined();
    expect(doneBeforeWrite).toBe(false);
    expect((await demotion!).statusCode).toBe(200);
    expect((await a.services.accounts.byId(target.account.id))?.role).toBe('trader');
    for (const s of [a, b]) expect((await account(s, target)).role).toBe('trader');
  });
});
