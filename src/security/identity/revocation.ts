/**
 * Shared-state keys that carry session revocation and role changes to every process. Entries live
 * as long as an access token can (plus tolerance), after which the token itself is expired.
 */
export function sessionStateKeys(sessionId: string, accountId: string) {
  return {
    revoked: `sess:revoked:${sessionId}`,
    role: `acct:role:${accountId}`,
  };
}
