import { Type } from '@sinclair/typebox';
import { unwrap } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import { clientContext, sessionPrincipal } from '../client-context.js';
import type { App } from '../types.js';

const ChallengeBody = Type.Object(
  {
    address: Type.String({ minLength: 1, maxLength: 64, description: '0x Ethereum address or base58 Solana public key' }),
    chain: Type.Union([Type.Literal('ethereum'), Type.Literal('solana')]),
  },
  { additionalProperties: false },
);

const ChallengeView = Type.Object({
  message: Type.String({ description: 'EIP-4361 (Ethereum) or Sign-In-With-Solana message to sign, exactly as given' }),
  nonce: Type.String(),
  expiresAt: Type.Integer({ description: 'Epoch ms; the nonce is single-use and expires in 5 minutes' }),
});

const LoginBody = Type.Object(
  {
    message: Type.String({ minLength: 1, maxLength: 8192, description: 'The challenge message, as signed' }),
    signature: Type.String({
      minLength: 1,
      maxLength: 8192,
      description: 'Ethereum: 0x hex of the 65-byte personal_sign signature (externally owned accounts only). Solana: base58 of the 64-byte ed25519 signature of the message bytes',
    }),
  },
  { additionalProperties: false },
);

const RefreshBody = Type.Object({ refreshToken: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false });

export const TokenPairView = Type.Object({
  accessToken: Type.String({ description: 'RS256 JWT, 1 hour' }),
  refreshToken: Type.String({ description: 'Opaque, single use: each refresh returns a new one' }),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer({ description: 'Seconds until the access token expires' }),
  sessionId: Type.String(),
  account: Type.Object({ id: Type.String(), wallet: Type.String(), chain: Type.String(), role: Type.String() }),
});

/** Wallet sign-in, refresh and logout (API.md "Wallet sign-in → JWT"). */
export function authRoutes(app: App, services: Services): void {
  app.post(
    '/api/v1/auth/challenge',
    { config: { permission: 'public' }, schema: { tags: ['identity'], summary: 'A sign-in message with a single-use nonce for a wallet', body: ChallengeBody, response: { 200: ChallengeView } } },
    async (request) => unwrap(await services.signIn.challenge(request.body.address, request.body.chain)),
  );

  app.post(
    '/api/v1/auth/login',
    { config: { permission: 'public' }, schema: { tags: ['identity'], summary: 'Exchange a signed challenge for an access and a refresh token', body: LoginBody, response: { 200: TokenPairView } } },
    async (request) => unwrap(await services.signIn.login(request.body.message, request.body.signature, clientContext(request))),
  );

  app.post(
    '/api/v1/auth/refresh',
    {
      config: { permission: 'public' },
      schema: { tags: ['identity'], summary: 'Rotate a refresh token into a new pair; a spent one revokes the session', body: RefreshBody, response: { 200: TokenPairView } },
    },
    async (request) => unwrap(await services.signIn.refresh(request.body.refreshToken, clientContext(request))),
  );

  app.post(
    '/api/v1/auth/logout',
    { config: { permission: 'self:manage' }, schema: { tags: ['identity'], summary: 'Revoke the current session at once', security: [{ bearer: [] }], response: { 204: Type.Null({ description: 'Revoked' }) } } },
    async (request, reply) => {
      const principal = sessionPrincipal(request);
      const revoked = await services.sessions.revoke(principal.accountId, principal.sessionId, 'logout', clientContext(request), { accountId: principal.accountId, sessionId: principal.sessionId });
      // A token whose session has no row still verified: refuse it from now on all the same.
      if (!revoked.ok) await services.sessions.publishRevocation(principal.sessionId, services.clock.now());
      return reply.code(204).send(null);
    },
  );
}
