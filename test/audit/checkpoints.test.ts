import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, CompactSign, exportJWK } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CHECKPOINT_TYP } from '../../src/audit/checkpoints.js';
import { ManualClock } from '../../src/lib/clock.js';
import { rotateKeysetFile } from '../../src/security/identity/signing-keys.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { rows, seedEvents } from './support.js';

const MAX_TOKEN_LIFETIME_MS = (3600 + 30) * 1000;

let server: TestServer;
let clock: ManualClock;
beforeEach(async () => {
  clock = new ManualClock();
  server = await startTestServer({ clock });
});
afterEach(() => server.close());

/** Rotates the signing key as the CLI does, and waits for the audit record of the rotation (one more in the chain). */
async function rotate(): Promise<void> {
  const fresh = rotateKeysetFile(server.config.jwtKeysFile, clock.now(), MAX_TOKEN_LIFETIME_MS);
  await server.services.signingKeys.reload();
  await vi.waitFor(
    async () => {
      const kids: unknown[] = [];
      for await (const view of server.services.audit.export({ type: 'admin.signing_keys.rotated' })) kids.push(view.details?.kid);
      expect(kids).toContain(fresh.kid);
    },
    { timeout: 2000, interval: 10 },
  );
}

describe('signed checkpoints', () => {
  it('signs the chain head with the active signing key, once per change', async () => {
    const audit = server.services.audit;
    expect(await audit.checkpoint()).toBeNull(); // empty chain
    await seedEvents(server, 3);
    const cp = await audit.checkpoint();
    expect(cp).toMatchObject({ kind: 'periodic', seq: 3, hash: (await rows(server))[2]!.hash });
    const stored = await server.services.store.db.selectFrom('audit_checkpoints').selectAll().executeTakeFirstOrThrow();
    expect(stored.kid).toBe(server.services.signingKeys.active().kid);
    const header = JSON.parse(Buffer.from(stored.jws.split('.')[0]!, 'base64url').toString());
    expect(header).toEqual({ alg: 'RS256', kid: stored.kid, typ: CHECKPOINT_TYP });
    // A copy of each signed statement goes to the log pipeline, outside the database.
    expect(server.logs.filter((l) => l.msg === 'audit checkpoint signed').map((l) => l.auditCheckpoint)).toEqual([expect.objectContaining({ id: cp!.id, seq: 3, hash: cp!.hash, kid: stored.kid })]);
    expect(await audit.checkpoint()).toBeNull(); // nothing new
    await rotate();
    // The rotation's own record is the new head, signed with the new key.
    expect(await audit.checkpoint()).toMatchObject({ seq: 4, hash: (await rows(server))[3]!.hash });
  });

  it('keeps verifying checkpoints after their keys left the keyset (each checkpoint endorses older keys)', async () => {
    const audit = server.services.audit;
    await seedEvents(server, 2);
    await audit.checkpoint(); // key 1
    await rotate();
    await seedEvents(server, 2, 'acc_b');
    await audit.checkpoint(); // key 2, endorses key 1
    clock.advance(MAX_TOKEN_LIFETIME_MS + 1);
    await rotate(); // key 1 leaves the keyset
    await seedEvents(server, 2, 'acc_c');
    await audit.checkpoint(); // key 3, endorses keys 1 and 2
    clock.advance(MAX_TOKEN_LIFETIME_MS + 1);
    await rotate(); // key 2 leaves the keyset

    const kids = (await server.services.store.db.selectFrom('audit_checkpoints').select('kid').execute()).map((r) => r.kid);
    const inKeyset = server.services.signingKeys.jwks(clock.now()).keys.map((k) => k.kid);
    expect(new Set(kids).size).toBe(3);
    expect(kids.filter((k) => !inKeyset.includes(k))).toHaveLength(2);
    expect(await audit.verify()).toMatchObject({ ok: true, checked: 9, checkpoints: 3 }); // 6 seeded, 3 rotations
  });

  it('keeps verifying when no checkpoint was signed while the retired key was still verifying tokens', async () => {
    // A checkpoint interval longer than a token lifetime (or a server stopped across the rotation):
    // the new key signs nothing until the old one has left JWKS.
    const audit = server.services.audit;
    await seedEvents(server, 2);
    await audit.checkpoint(); // key 1
    await rotate();
    clock.advance(MAX_TOKEN_LIFETIME_MS + 1);
    expect(await audit.verify()).toMatchObject({ ok: true, checkpoints: 1 });
    await seedEvents(server, 2, 'acc_b');
    await audit.checkpoint(); // key 2
    expect(await audit.verify()).toMatchObject({ ok: true, checked: 5, checkpoints: 2 }); // 4 seeded, 1 rotation
    clock.advance(MAX_TOKEN_LIFETIME_MS + 1);
    await rotate(); // key 1 leaves the keyset file, endorsed by key 2's checkpoint
    expect(await audit.verify()).toMatchObject({ ok: true, checked: 6, checkpoints: 2 });
  });

  it('refuses a checkpoint signed by a key an attacker added to the store', async () => {
    await seedEvents(server, 3);
    await server.services.audit.checkpoint();
    const last = (await rows(server))[2]!;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = await exportJWK(publicKey);
    const db = server.services.store.db;
    await db.insertInto('audit_signing_keys').values({ kid: 'kevil', jwk: JSON.stringify(jwk), jkt: await calculateJwkThumbprint(jwk), first_used_at: clock.now() }).execute();
    const at = clock.now();
    const payload = { v: 1, kind: 'periodic', seq: 3, hash: last.hash, at, keys: [] };
    const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'RS256', kid: 'kevil', typ: CHECKPOINT_TYP }).sign(privateKey);
    await db.insertInto('audit_checkpoints').values({ id: 'ackp_evil', seq: 3, hash: last.hash, at, kind: 'periodic', kid: 'kevil', jws }).execute();
    const report = await server.services.audit.verify();
    expect(report.firstBroken).toMatchObject({ id: 'ackp_evil', reason: 'checkpoint_invalid' });
    expect(report.checkpoints).toBe(1);
  });

  it('refuses an access token presented as a checkpoint', async () => {
    await seedEvents(server, 1);
    const last = (await rows(server))[0]!;
    const { token } = await server.services.accessTokens.issue({ accountId: 'acc_x', wallet: '0x' + '1'.repeat(40), role: 'trader', sessionId: 'ses_x', authTime: 1 });
    const kid = server.services.signingKeys.active().kid;
    await server.services.store.db.insertInto('audit_checkpoints').values({ id: 'ackp_token', seq: 1, hash: last.hash, at: clock.now(), kind: 'periodic', kid, jws: token }).execute();
    expect((await server.services.audit.verify()).firstBroken).toMatchObject({ id: 'ackp_token', reason: 'checkpoint_invalid' });
  });

  it('a checkpoint row that is not signed, however far ahead it claims to be, does not stop new checkpoints', async () => {
    const audit = server.services.audit;
    const db = server.services.store.db;
    await seedEvents(server, 2);
    const kid = server.services.signingKeys.active().kid;
    // Rows anyone with write access to the store could add: one far past the head, and one that
    // states the head exactly, each under the active key's id but with no valid signature.
    await db.insertInto('audit_checkpoints').values({ id: 'ackp_ahead', seq: 1_000_000_000, hash: 'f'.repeat(64), at: clock.now(), kind: 'periodic', kid, jws: 'x.y.z' }).execute();
    const head = (await rows(server))[1]!;
    await db.insertInto('audit_checkpoints').values({ id: 'ackp_fake', seq: 2, hash: head.hash, at: clock.now(), kind: 'periodic', kid, jws: 'x.y.z' }).execute();
    const cp = await audit.checkpoint();
    expect(cp).toMatchObject({ kind: 'periodic', seq: 2, hash: head.hash, kid });
    // Signed now: the next run finds it and signs nothing more.
    expect(await audit.checkpoint()).toBeNull();
    await seedEvents(server, 1);
    expect(await audit.checkpoint()).toMatchObject({ seq: 3 });
    // The fakes are reported by verification; the real ones verify.
    const report = await audit.verify();
    expect(report.firstBroken).toMatchObject({ reason: 'checkpoint_invalid' });
    expect(report.checkpoints).toBe(2);
  });
});
