import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import type { Chain, EpochMs } from './common.js';

/** One live sign-in session of the account (`GET /api/v1/security/sessions`). */
export interface SessionInfo {
  id: string;
  chain: Chain;
  createdAt: EpochMs;
  /** Recorded to the minute. */
  lastUsedAt: EpochMs;
  /** The client network at sign-in: /24 for IPv4, /48 for IPv6. */
  ip: string;
  userAgent: string;
  /** When the session ends at the latest. */
  expiresAt: EpochMs;
  /** Whether this is the session making the call. */
  current: boolean;
}

/** The account's sign-in sessions: a signed-in session only. */
export class SessionsApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `GET /api/v1/security/sessions` (the server answers `{ sessions }`; this returns the list). */
  async list(options?: CallOptions): Promise<SessionInfo[]> {
    const { sessions } = await this.#requester.call<{ sessions: SessionInfo[] }>({ method: 'GET', path: '/api/v1/security/sessions', list: 'sessions', auth: 'session', options });
    return sessions;
  }

  /** `DELETE /api/v1/security/sessions/:id`: its tokens are refused at once. */
  revoke(id: string, options?: CallOptions): Promise<void> {
    return this.#requester.call({ method: 'DELETE', path: `/api/v1/security/sessions/${pathParam(id)}`, auth: 'session', answer: 'any', options });
  }
}
