import { Type } from '@sinclair/typebox';
import { ApiError, unwrap } from '../../errors/registry.js';
import type { Services } from '../../services.js';
import { tokenView } from '../../trading/tokens/index.js';
import { MAX_LAUNCH_DECIMALS } from '../../trading/tokens/metadata.js';
import { marketView } from '../../trading/views.js';
import type { App } from '../types.js';
import { callerOf } from './trading.js';
import { AssetSymbol, MarketView, Security } from './trading-schemas.js';
import { pageOf } from './paging.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

/** A page cursor of the token list: the last token's creation time (epoch ms) and symbol, `1764345600000.MOON`. */
const TOKEN_CURSOR_PATTERN = '^[0-9]{1,16}\\.[A-Z0-9]{2,10}$';
function parseTokenCursor(cursor: string): { createdAt: number; symbol: string } {
  const dot = cursor.indexOf('.');
  const createdAt = Number(cursor.slice(0, dot));
  // Sixteen digits reach past 2^53, where a number is no longer exact: 9007199254740993 would be
  // read as …992 and page from another position than the one asked for. No token is created
  // that late (a Date ends at 8.64e15), so the server never hands out such a cursor: refuse it.
  if (!Number.isSafeInteger(createdAt)) throw new ApiError('validation_failed', 'before is not a cursor this server returned');
  return { createdAt, symbol: cursor.slice(dot + 1) };
}

export const TokenView = Type.Object({
  symbol: Type.String(),
  name: Type.String(),
  decimals: Type.Integer(),
  chain: Type.String({ description: 'evm | solana: where withdrawals of the token go' }),
  supply: Type.String({ description: 'Issued at launch, in tokens' }),
  description: Type.Union([Type.String(), Type.Null()]),
  website: Type.Union([Type.String(), Type.Null()]),
  imageUrl: Type.Union([Type.String(), Type.Null()]),
  market: Type.String(),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
});

const HttpsUrl = (what: string) => Type.String({ minLength: 1, maxLength: 2048, description: `${what}: an absolute https URL` });
// The 64-character rule is the domain's (after trimming, in characters, not UTF-16 units): the
// schema only bounds the raw string, as for key labels.
const Name = Type.String({ minLength: 1, maxLength: 256 });
const Description = Type.String({ maxLength: 1000 });

/**
 * Token launches and management (issue 7). Every path is the `tokens` rate category (10/s).
 * Launching and editing need `tokens:write` (traders and admins); reading is market data.
 */
export function tokenRoutes(app: App, services: Services): void {
  const tags = ['tokens'];
  const { tokens } = services;

  app.post(
    '/api/v1/tokens',
    {
      config: { permission: 'tokens:write' },
      schema: {
        tags,
        summary: 'Launch a token: create the asset, credit its whole supply to you and list SYMBOL-USDC',
        description:
          'name 1–64 characters; symbol 2–10 uppercase letters or digits, unused and not reserved; decimals 0–9 (an order moves at most 2^63-1 minor units); supply a whole number of tokens (a string), at most 10^15 unless you are an admin. At most MOONDRAFT_TOKEN_DAILY_CREATIONS (default 5) launches per account per 24 h.',
        security: Security,
        body: Type.Object(
          {
            name: Name,
            symbol: AssetSymbol,
            decimals: Type.Integer({ minimum: 0, maximum: MAX_LAUNCH_DECIMALS }),
            supply: Type.String({ pattern: '^[1-9][0-9]*$', maxLength: 40, description: 'Whole tokens, e.g. "1000000"' }),
            chain: Type.Optional(Type.Union([Type.Literal('evm'), Type.Literal('solana')], { description: 'Where withdrawals go (default evm)' })),
            description: Type.Optional(Description),
            website: Type.Optional(HttpsUrl('website')),
            imageUrl: Type.Optional(HttpsUrl('imageUrl')),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ token: TokenView, market: MarketView }) },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      const launched = unwrap(await tokens.launch(caller, request.body));
      await services.trading.orders.warm(launched.market.symbol);
      reply.code(201);
      return { token: tokenView(launched.token), market: marketView(launched.market) };
    },
  );

  app.get(
    '/api/v1/tokens',
    {
      config: { permission: 'market:read' },
      schema: {
        tags,
        summary: 'Launched tokens, newest first',
        security: Security,
        querystring: Type.Object(
          {
            mine: Type.Optional(Type.Boolean()),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
            before: Type.Optional(Type.String({ pattern: TOKEN_CURSOR_PATTERN, maxLength: 27, description: "The previous page's `next`: tokens after it" })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ tokens: Type.Array(TokenView), next: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `before` for the next page; null on the last page' }) }) },
      },
    },
    async (request) => {
      const caller = callerOf(request);
      // The list is market data, readable with a bare X-API-Key; the caller's own launches are not:
      // whoever saw the key id (without its secret) must not learn which tokens its owner created.
      const p = request.principal;
      if (request.query.mine && p.kind === 'apiKey' && !p.signed) {
        throw new ApiError('signature_required', 'mine=true reads your account: sign this request (X-API-Timestamp and X-API-Signature)');
      }
      const limit = request.query.limit ?? 100;
      const before = request.query.before === undefined ? undefined : parseTokenCursor(request.query.before);
      const { items: list, more } = pageOf(await tokens.list({ limit: limit + 1, ...(request.query.mine ? { createdBy: caller.accountId } : {}), ...(before ? { before } : {}) }), limit);
      const last = list[list.length - 1];
      return { tokens: list.map(tokenView), next: more && last ? `${last.createdAt}.${last.symbol}` : null };
    },
  );

  app.get(
    '/api/v1/tokens/:symbol',
    {
      config: { permission: 'market:read' },
      schema: { tags, summary: 'One launched token', security: Security, params: Type.Object({ symbol: AssetSymbol }, { additionalProperties: false }), response: { 200: TokenView } },
    },
    async (request) => {
      const token = await tokens.get(request.params.symbol);
      if (!token) throw new ApiError('not_found', 'No such token');
      return tokenView(token);
    },
  );

  app.patch(
    '/api/v1/tokens/:symbol',
    {
      config: { permission: 'tokens:write' },
      schema: {
        tags,
        summary: 'Change a token you launched: name, description, website, image URL (https only; null clears)',
        security: Security,
        params: Type.Object({ symbol: AssetSymbol }, { additionalProperties: false }),
        body: Type.Object(
          {
            name: Type.Optional(Name),
            description: Type.Optional(Type.Union([Description, Type.Null()])),
            website: Type.Optional(Nullable(HttpsUrl('website'))),
            imageUrl: Type.Optional(Nullable(HttpsUrl('imageUrl'))),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: TokenView },
      },
    },
    async (request) => tokenView(unwrap(await tokens.update(callerOf(request), request.params.symbol, request.body))),
  );
}
