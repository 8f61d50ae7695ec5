import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { fund, listMoon, USDC } from '../support/trading.js';

/**
 * Routes that take no body (cancel-all, logout, a withdrawal's cancel, the DELETEs) must not
 * silently drop one. `DELETE /api/v1/trading/orders` with `{ "market": "MOON-USDC" }` in the body
 * (the filter in the wrong place) used to cancel every open order in every market; a body they
 * do not take is refused (400 validation_failed) and changes nothing, as the routes that declare
 * an empty body (approve, unsuspend) already do. No body, or `{}`, is still served.
 */
let server: TestServer;
const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));

beforeAll(async () => {
  server = await startTestServer({ clock });
  await listMoon(server.services.trading, 'MOON');
  await listMoon(server.services.trading, 'STAR');
});
afterAll(() => server.close());

const inject = (method: string, url: string, headers: Record<string, string>, payload?: string) =>
  server.app.inject({ method: method as 'GET', url, headers: { ...headers, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(payload !== undefined ? { payload } : {}) });

describe('a body on a route that takes none', () => {
  it('DELETE /api/v1/trading/orders with the market in the body is refused and cancels nothing', async () => {
    const trader = await sessionFor(server);
    await fund(server.services.trading, trader.account.id, 'USDC', USDC('1000'));
    for (const market of ['MOON-USDC', 'STAR-USDC']) {
      const placed = await inject('POST', '/api/v1/trading/orders', trader.headers, JSON.stringify({ market, side: 'buy', type: 'limit', price: '1', quantity: '2' }));
      expect(placed.statusCode, placed.body).toBe(201);
    }
    const refused = await inject('DELETE', '/api/v1/trading/orders', trader.headers, JSON.stringify({ market: 'MOON-USDC' }));
    expect(refused.statusCode, refused.body).toBe(400);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.json()).toMatchObject({ code: 'validation_failed' });
    const open = await inject('GET', '/api/v1/trading/orders?status=open', trader.headers);
    expect(open.json().orders).toHaveLength(2);

    // The filter where it belongs, an empty object, or no body at all: served.
    expect((await inject('DELETE', '/api/v1/trading/orders?market=MOON-USDC', trader.headers, '{}')).json()).toMatchObject({ count: 1 });
    expect((await inject('DELETE', '/api/v1/trading/orders', trader.headers)).json()).toMatchObject({ count: 1 });
  });

  it('logout with a body is refused and the session stays signed in; without one it signs out', async () => {
    const s = await sessionFor(server);
    const refused = await inject('POST', '/api/v1/auth/logout', s.headers, JSON.stringify({ allSessions: true }));
    expect(refused.statusCode, refused.body).toBe(400);
    expect(refused.json()).toMatchObject({ code: 'validation_failed' });
    expect((await inject('GET', '/api/v1/account', s.headers)).statusCode).toBe(200);
    expect((await inject('POST', '/api/v1/auth/logout', s.headers, 'null')).statusCode).toBe(204);
    expect((await inject('GET', '/api/v1/account', s.headers)).statusCode).toBe(401);
  });

  it('the document shows those routes with an optional, empty body', async () => {
    const doc = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const body = doc.paths['/api/v1/trading/orders'].delete.requestBody;
    expect(body.required).toBe(false);
    expect(body.content['application/json'].schema).toMatchObject({ type: 'object', additionalProperties: false });
  });
});
