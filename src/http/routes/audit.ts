import { Readable } from 'node:stream';
import { Type, type Static } from '@sinclair/typebox';
import { chainOf } from '../../accounts/wallets.js';
import type { AuditCursor, AuditFilter } from '../../audit/audit-log.js';
import { AUDIT_CATEGORIES, AUDIT_OUTCOMES } from '../../audit/events.js';
import { ApiError } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import type { AuthenticatedPrincipal } from '../../security/principal.js';
import type { App } from '../types.js';

const Filters = {
  type: Type.Optional(Type.String({ pattern: '^[a-z_]+(\\.[a-z_]+)+$', maxLength: 64, description: 'Exact event type, e.g. `auth.signin.failed`' })),
  category: Type.Optional(Type.Union(AUDIT_CATEGORIES.map((c) => Type.Literal(c)), { description: 'Event category' })),
  // Ids and wallet addresses are letters, digits and `_`: anything else names no account, and goes
  // into the query as text, where PostgreSQL refuses a NUL byte (a 500 otherwise).
  account: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_]+$', minLength: 1, maxLength: 100, description: 'Account id (`acc_…`) or wallet address: events about or by that account' })),
  from: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Epoch ms, inclusive' })),
  to: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Epoch ms, exclusive' })),
};
const EventsQuery = Type.Object(
  { ...Filters, cursor: Type.Optional(Type.String({ maxLength: 100, description: 'nextCursor of the previous page' })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })) },
  { additionalProperties: false },
);
const ExportQuery = Type.Object(Filters, { additionalProperties: false });
type FilterQuery = Static<typeof ExportQuery>;

const RecordView = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  at: Type.Integer(),
  type: Type.String(),
  category: Type.Union(AUDIT_CATEGORIES.map((c) => Type.Literal(c))),
  accountId: Type.Union([Type.String(), Type.Null()]),
  actorId: Type.Union([Type.String(), Type.Null()]),
  outcome: Type.Union(AUDIT_OUTCOMES.map((o) => Type.Literal(o))),
  details: Type.Unknown({ description: 'Decrypted details (null when the ciphertext does not authenticate)' }),
  ip: Type.Union([Type.String(), Type.Null()], { description: 'Client address; access events hold only its /24 or /48 network' }),
  userAgent: Type.Union([Type.String(), Type.Null()]),
  readable: Type.Boolean(),
  prevHash: Type.String(),
  hash: Type.String(),
  entry: Type.Optional(
    Type.Integer({ description: 'API access events only: their index inside the access.batch record that stores them (seq, prevHash and hash are that record\'s)' }),
  ),
});

const VerifyView = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer({ description: 'Records examined' }),
  firstBroken: Type.Optional(
    Type.Object({
      seq: Type.Integer(),
      id: Type.Union([Type.String(), Type.Null()]),
      reason: Type.Union(['changed', 'removed', 'reordered', 'inserted', 'checkpoint_invalid'].map((r) => Type.Literal(r))),
      detail: Type.String(),
    }),
  ),
  headSeq: Type.Integer(),
  checkpoints: Type.Integer({ description: 'Signed checkpoints that verified' }),
});

function encodeCursor(next: AuditCursor): string {
  return Buffer.from(JSON.stringify(next), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): AuditCursor {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { seq?: unknown; skip?: unknown; before?: unknown };
    const whole = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
    if (whole(parsed.seq, 1) && whole(parsed.skip, 0)) return { seq: parsed.seq, skip: parsed.skip };
    // The cursor of earlier versions: every record below `before`.
    if (whole(parsed.before, 2)) return { seq: parsed.before - 1, skip: 0 };
  } catch {
    // falls through
  }
  throw new ApiError('validation_failed', 'cursor is not a cursor this server returned');
}

function auditor(principal: unknown): AuthenticatedPrincipal {
  const p = principal as { kind: string };
  if (p.kind === 'anonymous') throw new ApiError('unauthenticated');
  return principal as AuthenticatedPrincipal;
}

/**
 * The auditor's view of the audit log (permission `audit:read`: auditors, by session only).
 * Every read is itself recorded (`audit.read`) before any data leaves.
 */
export function auditRoutes(app: App, services: Services): void {
  /** Query filters → store filter; an unknown wallet matches nothing. */
  async function toFilter(q: FilterQuery): Promise<{ filter: AuditFilter; shown: Record<string, string | number> }> {
    const shown: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(q)) if (v !== undefined) shown[k] = v;
    let accountId = q.account;
    if (accountId !== undefined && chainOf(accountId)) accountId = (await services.accounts.byWallet(accountId))?.id ?? 'acc_unknown';
    return { filter: { type: q.type, category: q.category, accountId, from: q.from, to: q.to }, shown };
  }

  app.get(
    '/api/v1/audit/events',
    {
      config: { permission: 'audit:read' },
      schema: {
        tags: ['audit'],
        summary: 'Audit events, newest first, filtered by type, category, account and time range',
        security: [{ bearer: [] }],
        querystring: EventsQuery,
        response: { 200: Type.Object({ events: Type.Array(RecordView), nextCursor: Type.Union([Type.String(), Type.Null()]) }) },
      },
    },
    async (request) => {
      const principal = auditor(request.principal);
      const { cursor, limit, ...rest } = request.query;
      const start = cursor === undefined ? undefined : decodeCursor(cursor);
      const { filter, shown } = await toFilter(rest);
      const page = await services.audit.list(filter, { cursor: start, limit: limit ?? 100 });
      await services.audit.record({
        type: 'audit.read',
        accountId: principal.accountId,
        ip: request.clientIp,
        requestId: request.id,
        details: { view: 'events', via: 'api', filters: shown, returned: page.records.length },
      });
      return { events: page.records, nextCursor: page.next === null ? null : encodeCursor(page.next) };
    },
  );

  app.get(
    '/api/v1/audit/export',
    {
      config: { permission: 'audit:read' },
      schema: {
        tags: ['audit'],
        summary: 'Every matching audit event, oldest first, as NDJSON (one JSON record per line) for a SIEM',
        security: [{ bearer: [] }],
        querystring: ExportQuery,
        produces: ['application/x-ndjson'],
      },
    },
    async (request, reply) => {
      const principal = auditor(request.principal);
      const { filter, shown } = await toFilter(request.query);
      await services.audit.record({
        type: 'audit.read',
        accountId: principal.accountId,
        ip: request.clientIp,
        requestId: request.id,
        details: { view: 'export', via: 'api', filters: shown },
      });
      const records = services.audit.export(filter);
      async function* lines() {
        for await (const r of records) yield `${JSON.stringify(r)}\n`;
      }
      reply.type('application/x-ndjson; charset=utf-8');
      reply.header('Content-Disposition', 'attachment; filename="moondraft-audit.ndjson"');
      return reply.send(Readable.from(lines()));
    },
  );

  app.get(
    '/api/v1/audit/verify',
    {
      config: { permission: 'audit:read' },
      schema: {
        tags: ['audit'],
        summary: 'Verify the hash chain and signed checkpoints; reports the first changed, removed, reordered or inserted record, or invalid checkpoint',
        security: [{ bearer: [] }],
        response: { 200: VerifyView },
      },
    },
    async (request) => {
      const principal = auditor(request.principal);
      const report = await services.audit.verify();
      await services.audit.record({
        type: 'audit.read',
        accountId: principal.accountId,
        ip: request.clientIp,
        requestId: request.id,
        details: { view: 'verify', via: 'api', result: report.ok ? 'ok' : `broken at seq ${report.firstBroken!.seq} (${report.firstBroken!.reason})` },
      });
      return report;
    },
  );
}
