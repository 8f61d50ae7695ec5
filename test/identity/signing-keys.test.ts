import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeProtectedHeader, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Services } from '../../src/services.js';
import { buildProgram } from '../../src/cli/index.js';
import { ManualClock } from '../../src/lib/clock.js';
import { AccessTokens } from '../../src/security/identity/access-tokens.js';
import { ensureKeysetFile, generateSigningKey, readKeysetFile, rotateKeysetFile, SigningKeys, writeKeysetFile } from '../../src/security/identity/signing-keys.js';
import { dropSchema, newIsolation, startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { signInEthereum } from '../support/wallet.js';

const LIFETIME_MS = (3600 + 30) * 1000;
const OPTIONS = { issuer: 'https://api.example', audience: 'moondraft-api', ttlSec: 3600, clockToleranceSec: 30 };

async function rotateWithCli(file: string): Promise<string> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await buildProgram().exitOverride().parseAsync(['node', 'moondraft', 'keys', 'rotate-signing', '--file', file]);
    return log.mock.calls.map((c) => c.join(' ')).join('\n');
  } finally {
    log.mockRestore();
  }
}

/** A directory of its own for the describe block it is called in, removed after it. */
function tempDirFor(prefix: string): { path: string } {
  const dir = { path: '' };
  beforeAll(() => {
    dir.path = mkdtempSync(path.join(tmpdir(), prefix));
  });
  afterAll(() => rmSync(dir.path, { recursive: true, force: true }));
  return dir;
}

describe('signing-key rotation without downtime', () => {
  const tmp = tempDirFor('moondraft-keys-');

  it('old tokens keep verifying, new ones use the new kid, JWKS lists both, then the retired key leaves', async () => {
    const clock = new ManualClock(Date.UTC(2026, 1, 1));
    const file = path.join(tmp.path, 'keys.json');
    ensureKeysetFile(file, clock.now());
    const keys = await SigningKeys.load(file, LIFETIME_MS);
    const tokens = new AccessTokens(keys, { ...OPTIONS, cacheSize: 100 }, clock);
    const subject = { accountId: 'acc_1', wallet: '0xabc', role: 'trader' as const, sessionId: 'ses_1', authTime: 0 };

    const oldKid = keys.active().kid;
    const oldPrivate = keys.active().privateKey;
    const before = await tokens.issue(subject);
    expect(decodeProtectedHeader(before.token).kid).toBe(oldKid);
    expect((await tokens.verify(before.token)).ok).toBe(true);

    clock.advance(60_000);
    const rotatedAt = clock.now();
    const fresh = rotateKeysetFile(file, rotatedAt, LIFETIME_MS);
    await keys.reload();

    const after = await tokens.issue(subject);
    expect(decodeProtectedHeader(after.token).kid).toBe(fresh.kid);
    expect(fresh.kid).not.toBe(oldKid);
    expect((await tokens.verify(before.token)).ok).toBe(true);
    expect((await tokens.verify(after.token)).ok).toBe(true);
    expect(keys.jwks(clock.now()).keys.map((k) => k.kid).sort()).toEqual([oldKid, fresh.kid].sort());

    // A token the old key signs now (a stolen key, say) would still be good until the window closes…
    const forge = () =>
      new SignJWT({ wallet: '0xabc', role: 'admin', sid: 'ses_x', auth_time: 0 })
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: oldKid })
        .setIssuer(OPTIONS.issuer)
        .setAudience(OPTIONS.audience)
        .setSubject('acc_x')
        .setJti('j')
        .setIssuedAt(Math.floor(clock.now() / 1000))
        .setExpirationTime(Math.floor(clock.now() / 1000) + 3600)
        .sign(oldPrivate);
    clock.set(rotatedAt + LIFETIME_MS - 1);
    expect(keys.jwks(clock.now()).keys).toHaveLength(2);
    expect((await tokens.verify(await forge())).ok).toBe(true);

    // …and not one millisecond after: the longest token lifetime has passed since retirement.
    clock.set(rotatedAt + LIFETIME_MS);
    expect(keys.jwks(clock.now()).keys.map((k) => k.kid)).toEqual([fresh.kid]);
    expect(await tokens.verify(await forge())).toMatchObject({ ok: false, code: 'invalid_token' });
    expect((await tokens.verify(before.token)).ok).toBe(false);

    // The next rotation drops it from the file too.
    rotateKeysetFile(file, clock.now(), LIFETIME_MS);
    expect(readKeysetFile(file).map((k) => k.kid)).not.toContain(oldKid);
  });

  it('tells every key that signed new tokens since the last reload, not only the last (two rotations between reloads)', async () => {
    const clock = new ManualClock(Date.UTC(2026, 1, 1));
    const file = path.join(tmp.path, 'twice.json');
    ensureKeysetFile(file, clock.now());
    const keys = await SigningKeys.load(file, LIFETIME_MS);
    const told: string[] = [];
    keys.onActiveChanged((kid) => told.push(kid));
    clock.advance(1_000);
    const second = rotateKeysetFile(file, clock.now(), LIFETIME_MS);
    clock.advance(1_000);
    const third = rotateKeysetFile(file, clock.now(), LIFETIME_MS);
    await keys.reload();
    expect(told).toEqual([second.kid, third.kid]);
    await keys.reload();
    expect(told).toEqual([second.kid, third.kid]); // nothing new
  });

  it('`moondraft keys rotate-signing --file` creates a keyset (0600) and rotates it', async () => {
    const file = path.join(tmp.path, 'live-keys.json');
    expect(await rotateWithCli(file)).toMatch(/new signing key k\w+/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const [first] = readKeysetFile(file);
    await rotateWithCli(file);
    const keys = readKeysetFile(file);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatchObject({ kid: first!.kid });
    expect(keys[0]!.retiredAt).toBeTypeOf('number');
    expect(keys[1]!.retiredAt).toBeNull();
  });
});

describe('reloads of the keyset', () => {
  const tmp = tempDirFor('moondraft-keys-reload-');

  it('run one at a time: a reload of an older file never finishes last and rolls the keyset back', async () => {
    const file = path.join(tmp.path, 'keys.json');
    const k0 = generateSigningKey(1_000);
    writeKeysetFile(file, [k0]);
    const keys = await SigningKeys.load(file, LIFETIME_MS);
    const told: string[] = [];
    keys.onActiveChanged((kid) => told.push(kid));
    // Three keys to load (slower), then a newer file of one key (quicker), read by a second reload
    // started before the first is done.
    const [k1, k2] = [generateSigningKey(2_000), generateSigningKey(3_000)];
    writeKeysetFile(file, [{ ...k0, retiredAt: 2_000 }, { ...k1, retiredAt: 3_000 }, k2]);
    const first = keys.reload();
    const k3 = generateSigningKey(4_000);
    writeKeysetFile(file, [k3]);
    const second = keys.reload();
    await Promise.all([first, second]);
    expect(keys.active().kid).toBe(k3.kid);
    expect(told).toEqual([k1.kid, k2.kid, k3.kid]);
  });

  it('a listener that throws neither stops the others nor leaves the reload half told', async () => {
    const file = path.join(tmp.path, 'keys-throw.json');
    const k0 = generateSigningKey(1_000);
    writeKeysetFile(file, [k0]);
    const keys = await SigningKeys.load(file, LIFETIME_MS);
    const told: string[] = [];
    keys.onActiveChanged(() => {
      throw new Error('listener broke');
    });
    keys.onActiveChanged((kid) => told.push(kid));
    const k1 = generateSigningKey(2_000);
    writeKeysetFile(file, [{ ...k0, retiredAt: 2_000 }, k1]);
    await expect(keys.reload()).rejects.toThrow(/listener broke/);
    expect(keys.active().kid).toBe(k1.kid);
    expect(told).toEqual([k1.kid]);
  });
});

describe('rotation on a running server', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it('JWKS serves both keys, old sessions keep working and new sign-ins use the new kid', async () => {
    const before = await signInEthereum(server);
    const oldKid = decodeProtectedHeader(before.accessToken).kid;
    await rotateWithCli(server.config.jwtKeysFile);
    await server.services.signingKeys.reload(); // what the 5-second reload timer does

    const jwks = (await server.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    expect(jwks.keys).toHaveLength(2);
    for (const k of jwks.keys) {
      expect(k).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      expect(k.d).toBeUndefined(); // public parts only
    }
    expect((await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: before.headers })).statusCode).toBe(200);
    const after = await signInEthereum(server);
    const newKid = decodeProtectedHeader(after.accessToken).kid;
    expect(newKid).not.toBe(oldKid);
    expect(jwks.keys.map((k: { kid: string }) => k.kid).sort()).toEqual([oldKid, newKid].sort());
  });
});

/** The kids of the rotations the audit trail holds (the details are encrypted: read them through the log). */
async function recordedRotations(services: Services): Promise<string[]> {
  const kids: string[] = [];
  for await (const view of services.audit.export({ type: 'admin.signing_keys.rotated' })) kids.push(String(view.details?.kid));
  return kids;
}

describe('a rotation is recorded in the audit trail', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it('once, by the server that picks it up, with the new kid; a reload that finds nothing new records nothing', async () => {
    expect(await recordedRotations(server.services)).toEqual([]); // the keyset it started with is no rotation
    await rotateWithCli(server.config.jwtKeysFile);
    await server.services.signingKeys.reload();
    const kid = server.services.signingKeys.active().kid;
    await vi.waitFor(async () => expect(await recordedRotations(server.services)).toEqual([kid]), { timeout: 2000, interval: 20 });
    await server.services.signingKeys.reload();
    await new Promise((r) => setTimeout(r, 50));
    expect(await recordedRotations(server.services)).toEqual([kid]);
    expect(await server.services.audit.verify()).toMatchObject({ ok: true });
  });
});

const scaleout = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));

describe.runIf(scaleout)('a rotation seen by several processes (one Redis and schema)', () => {
  it('is recorded once, whichever of them reloads first', async () => {
    const isolation = newIsolation();
    const a = await startTestServer({ backend: 'scaleout', isolation });
    const b = await startTestServer({ backend: 'scaleout', isolation, dataDir: a.dataDir });
    try {
      await rotateWithCli(a.config.jwtKeysFile);
      await Promise.all([a.services.signingKeys.reload(), b.services.signingKeys.reload()]);
      const kid = a.services.signingKeys.active().kid;
      expect(b.services.signingKeys.active().kid).toBe(kid);
      await vi.waitFor(async () => expect(await recordedRotations(a.services)).toEqual([kid]), { timeout: 2000, interval: 20 });
      await new Promise((r) => setTimeout(r, 100));
      expect(await recordedRotations(b.services)).toEqual([kid]); // the same trail, one record
    } finally {
      await b.close();
      await a.close();
      await dropSchema(isolation.pgSchema);
    }
  });
});

describe('rotation across processes sharing the keyset', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-keys-procs-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('a token signed with the new key by one process is accepted at once by another that has not re-read the file yet', async () => {
    const a = await startTestServer({ sqliteFile: true, dataDir });
    const b = await startTestServer({ sqliteFile: true, dataDir });
    try {
      await rotateWithCli(a.config.jwtKeysFile);
      await a.services.signingKeys.reload(); // A's 5-second timer fired; B's has not yet
      const s = await signInEthereum(a);
      const res = await b.app.inject({ method: 'GET', url: '/api/v1/account', headers: s.headers });
      expect(res.statusCode, res.body).toBe(200);
      // A kid that is in no keyset stays refused.
      const [, payload, sig] = s.accessToken.split('.');
      const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: 'knope' })).toString('base64url');
      const forged = await b.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: `Bearer ${header}.${payload}.${sig}` } });
      expect(forged.json().code).toBe('invalid_token');
    } finally {
      await b.close();
      await a.close();
    }
  });
});

describe('rewriting the keyset file', () => {
  const tmp = tempDirFor('md-keyset-');

  it('leaves it 0600 even when a stale temporary file of the same name was readable by others', () => {
    const file = path.join(tmp.path, 'keys.json');
    writeKeysetFile(file, [generateSigningKey(Date.now())]);
    // A temporary file left by an earlier run (a crash between write and rename) with a loose mode.
    const stale = `${file}.${process.pid}.tmp`;
    writeFileSync(stale, 'old', { mode: 0o644 });
    chmodSync(stale, 0o644);
    writeKeysetFile(file, [generateSigningKey(Date.now())]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});
