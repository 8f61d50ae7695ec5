import { statSync } from 'node:fs';

/**
 * Why a file of private keys is too open, or null when it is not: it may be readable by its owner
 * only (no group or other bits) when this process's user owns it, or also readable (not writable)
 * by its group when root owns it (a secret the platform mounts), whichever user the server runs as
 * (root in many containers: the same mounted secret must not be refused there and accepted under
 * any other user); a file owned by anyone else is refused. PostgreSQL's rule for its TLS key (as
 * libpq applies it, which may run as root). Otherwise another user of the host could read the
 * keys, or swap them. Windows has no such modes: not checked there.
 */
export function privateFileProblem(file: string): string | null {
  if (process.platform === 'win32') return null;
  const st = statSync(file);
  const mode = st.mode & 0o7777;
  const uid = process.getuid?.();
  const shown = mode.toString(8).padStart(4, '0');
  if (st.uid === 0) return (mode & 0o037) === 0 ? null : `${file} may be read or written by other users (mode ${shown}); chmod 640 it or less (root owns it)`;
  if (st.uid === uid) return (mode & 0o077) === 0 ? null : `${file} may be read or written by other users (mode ${shown}); chmod 600 it`;
  return `${file} belongs to another user (uid ${st.uid}); it must belong to the user the server runs as, or to root`;
}
