import type { Role, Scope } from './rbac/roles.js';

/** Who is making a request, as established by the authenticate stage. */
export type Principal =
  | { kind: 'anonymous' }
  | {
      kind: 'session';
      accountId: string;
      wallet: string;
      role: Role;
      sessionId: string;
      tokenId: string;
      /** Epoch seconds of the sign-in that started the session (step-up checks). */
      authTime: number;
      tokenExpiresAt: number;
    }
  | {
      kind: 'apiKey';
      accountId: string;
      wallet: string;
      role: Role;
      keyId: string;
      scopes: readonly Scope[];
      /** Whether the request carried a valid signature (market data may come unsigned). */
      signed: boolean;
    };

export type AuthenticatedPrincipal = Exclude<Principal, { kind: 'anonymous' }>;

export const ANONYMOUS: Principal = Object.freeze({ kind: 'anonymous' });
