import type { CallOptions, Requester } from '../core/requester.js';
import { pathParam } from '../core/requester.js';
import type { EpochMs } from './common.js';

export interface SessionInfo {
  id: string;
  createdAt: EpochMs;
  lastUsedAt: EpochMs | null;
  /** Truncated by the server. */
  ip: string | null;
  userAgent: string | null;
  /** Whether this is the session making the call. */
  current?: boolean;
}

/** The account's sign-in sessions: a signed-in session only. */
export class SessionsApi {
  readonly #requester: Requester;

  constructor(requester: Requester) {
    this.#requester = requester;
  }

  /** `GET /api/v1/security/sessions` */
  list(options?: CallOptions): Promise<SessionInfo[]> {
    return this.#requester.call({ method: 'GET', path: '/api/v1/security/sessions', auth: 'session', options });
  }

  /** `DELETE /api/v1/security/sessions/:id`: its tokens are refused at once. */
  revoke(id: string, options?: CallOptions): Promise<void> {
    return this.#requester.call({ method: 'DELETE', path: `/api/v1/security/sessions/${pathParam(id)}`, auth: 'session', options });
  }
}
