import { Type, type Static } from '@sinclair/typebox';
import { ApiError, unwrap } from '../../errors/registry.js';
import { evaluateChecklist } from '../../security/keys/checklist.js';
import { statusOf, type ApiKeyRecord } from '../../security/keys/records.js';
import { KEY_LIMITS } from '../../security/keys/service.js';
import type { AuthenticatedPrincipal } from '../../security/principal.js';
import { scopesAllowedForRole, SCOPES, type Role } from '../../security/rbac/roles.js';
import type { Services } from '../../services.js';
import type { FastifyRequest } from 'fastify';
import type { App } from '../types.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const ScopeName = Type.Union(SCOPES.map((s) => Type.Literal(s)));

const KeyId = Type.Object({ id: Type.String({ pattern: '^key_[0-9A-Z]{26}$', description: 'API key id' }) }, { additionalProperties: false });

export const KeyView = Type.Object({
  id: Type.String(),
  label: Type.String(),
  type: Type.Union([Type.Literal('hmac'), Type.Literal('ed25519')]),
  environment: Type.Union([Type.Literal('sandbox'), Type.Literal('live')]),
  prefix: Type.String({ description: 'The first characters of the API key, for recognising it' }),
  status: Type.Union([Type.Literal('active'), Type.Literal('suspended'), Type.Literal('revoked'), Type.Literal('expired')]),
  scopes: Type.Array(Type.String()),
  effectiveScopes: Type.Array(Type.String(), { description: "The scopes in force now: the key's scopes capped by its owner's current role" }),
  ipWhitelist: Type.Array(Type.String()),
  allowedCountries: Type.Array(Type.String()),
  publicKey: Nullable(Type.String({ description: 'ed25519 keys: the registered public key (hex)' })),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
  expiresAt: Type.Integer(),
  revokedAt: Nullable(Type.Integer()),
  suspendedAt: Nullable(Type.Integer()),
  suspendedReason: Nullable(Type.String()),
  regeneratedAt: Nullable(Type.Integer()),
  previousCredentialValidUntil: Nullable(Type.Integer({ description: 'After a regeneration with a grace period: until when the old secret or public key still verifies' })),
  lastUsedAt: Nullable(Type.Integer()),
  lastSignedAt: Nullable(Type.Integer()),
});

const CreatedKey = Type.Composite([
  KeyView,
  Type.Object({
    apiKey: Type.String({ description: 'Shown in this response only' }),
    apiSecret: Type.Optional(Type.String({ description: 'hmac keys: shown in this response only, never again' })),
  }),
]);

const RegeneratedKey = Type.Composite([KeyView, Type.Object({ apiSecret: Type.Optional(Type.String({ description: 'hmac keys: the new secret, shown in this response only' })) })]);

const IpList = Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64, description: `At most ${KEY_LIMITS.maxIpWhitelist} IPv4/IPv6 addresses or CIDR ranges; empty means any address` });
const CountryList = Type.Array(Type.String({ maxLength: 8 }), { maxItems: 64, description: 'ISO 3166-1 alpha-2 codes; when set, addresses of unknown country are refused' });

// API.md: 1–64 characters after trimming. The service trims and applies that rule; the schema
// only bounds the raw string, so blanks around a 64-character label do not make it too long.
const Label = Type.String({ minLength: 1, maxLength: 256, description: `1–${KEY_LIMITS.maxLabel} characters after trimming, with a visible one` });

const CreateBody = Type.Object(
  {
    label: Label,
    scopes: Type.Array(ScopeName, { minItems: 1, maxItems: SCOPES.length }),
    ipWhitelist: Type.Optional(IpList),
    allowedCountries: Type.Optional(CountryList),
    expiresInDays: Type.Optional(Type.Integer({ minimum: 1, description: `Default ${KEY_LIMITS.defaultExpiresInDays}; at most ${KEY_LIMITS.maxExpiresInDays.live} in live` })),
    type: Type.Optional(Type.Union([Type.Literal('hmac'), Type.Literal('ed25519')], { default: 'hmac' })),
    publicKey: Type.Optional(Type.String({ maxLength: 256, description: 'ed25519 keys: the public key, 32 bytes hex (or SPKI PEM)' })),
  },
  { additionalProperties: false },
);

const UpdateBody = Type.Object(
  {
    label: Type.Optional(Label),
    scopes: Type.Optional(Type.Array(ScopeName, { minItems: 1, maxItems: SCOPES.length, description: 'Only a subset of the current scopes (narrowing)' })),
    ipWhitelist: Type.Optional(IpList),
    allowedCountries: Type.Optional(CountryList),
  },
  { additionalProperties: false },
);

// Optional: the shared contract names the route without a body, which means every default.
const RegenerateBody = Type.Optional(
  Type.Object(
    {
      gracePeriodSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: KEY_LIMITS.maxGracePeriodSeconds, description: 'How long the old credential stays valid (default 0)' })),
      publicKey: Type.Optional(Type.String({ maxLength: 256, description: 'ed25519 keys: the new public key' })),
      expiresInDays: Type.Optional(Type.Integer({ minimum: 1, description: "Default: the key's current lifetime" })),
    },
    { additionalProperties: false },
  ),
);

// Optional, as every field in them: no body means {}.
const SuspendBody = Type.Optional(Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false }));
const EmptyBody = Type.Optional(Type.Object({}, { additionalProperties: false }));

const ChecklistView = Type.Object({
  environment: Type.String(),
  passed: Type.Integer(),
  total: Type.Integer(),
  items: Type.Array(
    Type.Object({
      id: Type.String(),
      title: Type.String(),
      result: Type.Union([Type.Literal('pass'), Type.Literal('fail')]),
      detail: Type.String(),
      advice: Type.String(),
      keyIds: Type.Array(Type.String()),
    }),
  ),
});

function keyView(record: ApiKeyRecord, ownerRole: Role, now: number): Static<typeof KeyView> {
  const allowed = scopesAllowedForRole(ownerRole);
  return {
    id: record.id,
    label: record.label,
    type: record.type,
    environment: record.environment,
    prefix: record.prefix,
    status: statusOf(record, now),
    scopes: record.scopes,
    effectiveScopes: record.revokedAt === null ? record.scopes.filter((s) => allowed.includes(s)) : [],
    ipWhitelist: record.ipWhitelist,
    allowedCountries: record.allowedCountries,
    publicKey: record.publicKey,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    expiresAt: record.expiresAt,
    revokedAt: record.revokedAt,
    suspendedAt: record.suspendedAt,
    suspendedReason: record.suspendedReason,
    regeneratedAt: record.regeneratedAt,
    previousCredentialValidUntil: record.prevValidUntil !== null && record.prevValidUntil > now ? record.prevValidUntil : null,
    lastUsedAt: record.lastUsedAt,
    lastSignedAt: record.lastSignedAt,
  };
}

/** Key management is for a signed-in person (self:manage and keys:write are session-only; auditors may not write keys). */
function owner(request: FastifyRequest): AuthenticatedPrincipal & { kind: 'session' } {
  const p = request.principal;
  if (p.kind !== 'session') throw new ApiError('session_required', 'API keys are managed with a signed-in session only');
  return p;
}

const session = [{ bearer: [] }];

/** API keys (issue 4) and the security checklist. */
export function keyRoutes(app: App, services: Services): void {
  const keys = services.apiKeys;
  const now = () => services.clock.now();

  app.post(
    '/api/v1/keys',
    { config: { permission: 'keys:write' }, schema: { tags: ['keys'], summary: 'Create an API key (the secret is shown once)', security: session, body: CreateBody, response: { 201: CreatedKey } } },
    async (request, reply) => {
      const p = owner(request);
      const created = unwrap(await keys.create({ accountId: p.accountId, role: p.role, sessionId: p.sessionId }, request.body));
      reply.code(201);
      return { ...keyView(created.record, p.role, now()), apiKey: created.apiKey, ...(created.apiSecret === undefined ? {} : { apiSecret: created.apiSecret }) };
    },
  );

  app.get(
    '/api/v1/keys',
    { config: { permission: 'self:manage' }, schema: { tags: ['keys'], summary: "The caller's API keys not revoked and the 100 most recently revoked (never their secrets)", security: session, response: { 200: Type.Object({ keys: Type.Array(KeyView) }) } } },
    async (request) => {
      const p = owner(request);
      const list = await keys.list(p.accountId);
      return { keys: list.map((k) => keyView(k, p.role, now())) };
    },
  );

  app.get(
    '/api/v1/keys/:id',
    { config: { permission: 'self:manage' }, schema: { tags: ['keys'], summary: 'One API key', security: session, params: KeyId, response: { 200: KeyView } } },
    async (request) => {
      const p = owner(request);
      return keyView(unwrap(await keys.get(p.accountId, request.params.id)), p.role, now());
    },
  );

  app.patch(
    '/api/v1/keys/:id',
    {
      config: { permission: 'keys:write' },
      schema: { tags: ['keys'], summary: 'Change label, IP whitelist or countries; narrow scopes (never widen)', security: session, params: KeyId, body: UpdateBody, response: { 200: KeyView } },
    },
    async (request) => {
      const p = owner(request);
      return keyView(unwrap(await keys.update({ accountId: p.accountId, role: p.role, sessionId: p.sessionId }, request.params.id, request.body)), p.role, now());
    },
  );

  app.post(
    '/api/v1/keys/:id/regenerate',
    {
      config: { permission: 'keys:write' },
      schema: {
        tags: ['keys'],
        summary: 'New secret (or ed25519 public key) and a fresh expiry; the old one stays valid for the grace period',
        security: session,
        params: KeyId,
        body: RegenerateBody,
        response: { 200: RegeneratedKey },
      },
    },
    async (request) => {
      const p = owner(request);
      const r = unwrap(await keys.regenerate({ accountId: p.accountId, role: p.role, sessionId: p.sessionId }, request.params.id, request.body ?? {}));
      return { ...keyView(r.record, p.role, now()), ...(r.apiSecret === undefined ? {} : { apiSecret: r.apiSecret }) };
    },
  );

  app.delete(
    '/api/v1/keys/:id',
    { config: { permission: 'self:manage' }, schema: { tags: ['keys'], summary: 'Revoke an API key, at once on every server', security: session, params: KeyId, response: { 200: KeyView } } },
    async (request) => {
      const p = owner(request);
      return keyView(unwrap(await keys.revoke({ accountId: p.accountId, role: p.role, sessionId: p.sessionId }, request.params.id)), p.role, now());
    },
  );

  const ownerRole = async (record: ApiKeyRecord): Promise<Role> => (await services.accounts.byId(record.accountId))?.role ?? 'trader';

  app.post(
    '/api/v1/admin/keys/:id/suspend',
    { config: { permission: 'admin:write' }, schema: { tags: ['admin'], summary: 'Suspend any API key (answers key_suspended until unsuspended)', security: session, params: KeyId, body: SuspendBody, response: { 200: KeyView } } },
    async (request) => {
      const p = owner(request);
      const record = unwrap(await keys.suspend(request.params.id, p.accountId, request.body?.reason, p.sessionId, { byAdmin: true }));
      return keyView(record, await ownerRole(record), now());
    },
  );

  app.post(
    '/api/v1/admin/keys/:id/unsuspend',
    { config: { permission: 'admin:write' }, schema: { tags: ['admin'], summary: 'Lift the suspension of an API key', security: session, params: KeyId, body: EmptyBody, response: { 200: KeyView } } },
    async (request) => {
      const p = owner(request);
      const record = unwrap(await keys.unsuspend(request.params.id, p.accountId, p.sessionId, { byAdmin: true }));
      return keyView(record, await ownerRole(record), now());
    },
  );

  app.get(
    '/api/v1/security/checklist',
    {
      config: { permission: 'self:manage' },
      schema: { tags: ['keys'], summary: 'The "Before Going Live" checklist evaluated on your API keys, with advice per item', security: session, response: { 200: ChecklistView } },
    },
    async (request) => {
      const p = owner(request);
      return evaluateChecklist({ keys: await keys.list(p.accountId), role: p.role, environment: keys.environment, now: now() });
    },
  );
}
