import { randomBytes } from 'node:crypto';
import type { Role } from '../../src/security/rbac/roles.js';
import type { TestServer } from './server.js';

/** A random Ethereum-shaped wallet address (no key: for tests that do not exercise sign-in itself). */
export function randomWallet(): string {
  return `0x${randomBytes(20).toString('hex')}`;
}

/**
 * A real access token for a (new) account, issued by the server's own token service, so tests of
 * other features run through the real authenticate and authorize stages. Wallet sign-in itself is
 * tested in the identity suites.
 */
export async function sessionFor(server: TestServer, options: { wallet?: string; role?: Role; authTime?: number } = {}) {
  const wallet = options.wallet ?? randomWallet();
  const created = await server.services.accounts.findOrCreate(wallet);
  if (!created.ok) throw new Error(created.detail);
  let account = created.value;
  if (options.role && options.role !== account.role) {
    const changed = await server.services.accounts.setRole(wallet, options.role, 'test');
    if (!changed.ok) throw new Error(changed.detail);
    account = changed.value;
  }
  const sessionId = `ses_test_${randomBytes(8).toString('hex')}`;
  const { token, claims } = await server.services.accessTokens.issue({
    accountId: account.id,
    wallet: account.wallet,
    role: account.role,
    sessionId,
    authTime: options.authTime ?? Math.floor(server.services.clock.now() / 1000),
  });
  return { account, accessToken: token, claims, sessionId, headers: { authorization: `Bearer ${token}` } };
}
