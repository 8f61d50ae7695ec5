import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Keyring } from '../crypto/keyring.js';
import type { Store } from '../../store/db.js';

/** Re-encrypts one feature's keyring ciphertexts from one keyring to another; returns how many. */
export interface Reencrypter {
  name: string;
  /** Master-key versions of stored ciphertexts that `keyring` does not hold, with how many each. */
  unreadable(store: Store, keyring: Keyring): Promise<Map<number, number>>;
  run(store: Store, from: Keyring, to: Keyring): Promise<number>;
}

/**
 * API-key secrets (current and grace-period ones), AAD = key id. Each row is rewritten only if it
 * still holds the ciphertext that was read, so a regeneration running at the same time wins.
 */
export const apiKeySecrets: Reencrypter = {
  name: 'api key secrets',
  async unreadable(store, keyring) {
    const rows = await store.db.selectFrom('api_keys').select(['secret_enc', 'prev_secret_enc']).execute();
    const missing = new Map<number, number>();
    for (const blob of rows.flatMap((r) => [r.secret_enc, r.prev_secret_enc])) {
      const version = blob === null ? undefined : Keyring.versionOf(blob);
      if (version !== undefined && !keyring.has(version)) missing.set(version, (missing.get(version) ?? 0) + 1);
    }
    return missing;
  },
  async run(store, from, to) {
    return store.transaction(async (trx) => {
      const rows = await trx
        .selectFrom('api_keys')
        .select(['id', 'secret_enc', 'prev_secret_enc'])
        .where((eb) => eb.or([eb('secret_enc', 'is not', null), eb('prev_secret_enc', 'is not', null)]))
        .execute();
      let count = 0;
      // Every blob is read with the current keyring, never skipped by its version number alone: a
      // blob naming the new version was made by another run's key of that number (a spec that was
      // never installed), and must fail the run (rolling it back) rather than be counted as done.
      const again = (blob: string, id: string) => to.encrypt(from.decryptBuffer(blob, id), id);
      for (const row of rows) {
        for (const column of ['secret_enc', 'prev_secret_enc'] as const) {
          const blob = row[column];
          if (blob === null) continue;
          const next = again(blob, row.id);
          const r = await trx.updateTable('api_keys').set({ [column]: next }).where('id', '=', row.id).where(column, '=', blob).executeTakeFirst();
          count += Number(r.numUpdatedRows);
        }
      }
      return count;
    });
  },
};

/** Every feature's re-encrypter; features storing keyring ciphertexts add theirs here. */
export const REENCRYPTERS: Reencrypter[] = [apiKeySecrets];

/** Writes a secret file atomically (temp file 0600, then rename), replacing the old one. */
function replaceSecretFile(file: string, contents: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, contents, { mode: 0o600, flag: 'w' });
  renameSync(tmp, file);
}

/**
 * `moondraft keys rotate-master`: adds a new master-key version and re-encrypts every secret under
 * it. The new keyring spec (every old version plus the new one) is saved or handed to the operator
 * BEFORE any row changes, so no ciphertext ever exists under a key nobody holds: in sandbox without
 * MOONDRAFT_MASTER_KEY it replaces `<dataDir>/master.key`; then `announce` hands it over (the CLI
 * prints it only when there is no such file).
 */
export async function rotateMasterKey(input: {
  store: Store;
  keyring: Keyring;
  /** The master.key file to replace (sandbox without MOONDRAFT_MASTER_KEY), else undefined. */
  keyFile: string | undefined;
  announce: (spec: string) => void;
  reencrypters?: readonly Reencrypter[];
}): Promise<{ spec: string; version: number; reencrypted: Record<string, number> }> {
  const reencrypters = input.reencrypters ?? REENCRYPTERS;
  // Before any key is made or announced: every stored secret must be readable with the current
  // keyring. One that is not was re-encrypted by an earlier run whose printed spec was never
  // installed; rotating again from the old keyring would leave it under a key nobody holds.
  for (const r of reencrypters) {
    const missing = await r.unreadable(input.store, input.keyring);
    if (missing.size > 0) {
      const list = [...missing].map(([v, n]) => `${n} under version ${v}`).join(', ');
      throw new Error(
        `${r.name}: ${list}; master key version ${[...missing.keys()].join(', ')} is not in MOONDRAFT_MASTER_KEY (or master.key). ` +
          'A previous rotate-master re-encrypted them under the spec it printed: configure that spec, then run rotate-master again',
      );
    }
  }
  const spec = input.keyring.specWithNewKey();
  const next = Keyring.parse(spec);
  if (input.keyFile) replaceSecretFile(input.keyFile, `${spec}\n`);
  input.announce(spec);
  const reencrypted: Record<string, number> = {};
  for (const r of reencrypters) reencrypted[r.name] = await r.run(input.store, input.keyring, next);
  return { spec, version: next.activeVersion, reencrypted };
}
