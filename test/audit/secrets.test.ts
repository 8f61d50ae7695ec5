import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { rows } from './support.js';

/**
 * Drives requests and events full of secrets through the server, then searches every place an
 * audit record lives: the raw database rows, the decrypted records an auditor reads, and the export.
 */
describe('no secret appears in any audit record', () => {
  let server: TestServer;
  let raw: string;
  let decrypted: string;
  let exported: string;
  let trader: Awaited<ReturnType<typeof sessionFor>>;

  const SECRETS = {
    querySecret: 'QS_4d1f9c0e7b',
    bodySecret: 'BODY_a83be1f0c2',
    apiKey: 'md_test_KEYVALUE9f3e2d1c',
    signature: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    cookie: 'COOKIE_77aa11',
    detailSecret: 'DETAIL_SECRET_5e6f',
  };
  const CLIENT_IP = '198.51.100.123';
  const USER_AGENT = 'AgentSmith/9.9 (identifying)';

  beforeAll(async () => {
    server = await startTestServer({ env: { MOONDRAFT_AUDIT_FLUSH_MS: '600000' } });
    trader = await sessionFor(server);
    const auditor = await sessionFor(server, { role: 'auditor' });
    const common = { remoteAddress: CLIENT_IP, 'user-agent': USER_AGENT };
    await server.app.inject({ method: 'GET', url: `/api/v1/account?apiSecret=${SECRETS.querySecret}`, headers: { ...trader.headers, 'user-agent': USER_AGENT, cookie: `session=${SECRETS.cookie}` }, remoteAddress: CLIENT_IP });
    await server.app.inject({
      method: 'POST',
      url: '/api/v1/keys',
      headers: { ...trader.headers, 'content-type': 'application/json', 'user-agent': common['user-agent'] },
      payload: JSON.stringify({ apiSecret: SECRETS.bodySecret }),
      remoteAddress: CLIENT_IP,
    });
    await server.app.inject({
      method: 'GET',
      url: '/api/v1/account',
      headers: { 'x-api-key': SECRETS.apiKey, 'x-api-timestamp': String(Date.now()), 'x-api-signature': SECRETS.signature },
      remoteAddress: CLIENT_IP,
    });
    await server.app.inject({ method: 'GET', url: '/api/v1/account', headers: { authorization: `Bearer ${trader.accessToken}x` }, remoteAddress: CLIENT_IP });
    // A feature that carelessly passes a secret along: redacted before it is stored.
    await server.services.audit.record({ type: 'admin.key.created', accountId: trader.account.id, details: { keyId: 'key_1', apiSecret: SECRETS.detailSecret, note: trader.accessToken } });
    server.services.events.emit({ type: 'signin.failed', at: server.services.clock.now(), reason: 'bad signature', ip: CLIENT_IP, userAgent: USER_AGENT });
    await server.services.audit.settle();

    raw = JSON.stringify(await rows(server));
    decrypted = JSON.stringify((await server.app.inject({ method: 'GET', url: '/api/v1/audit/events?limit=500', headers: auditor.headers })).json());
    exported = (await server.app.inject({ method: 'GET', url: '/api/v1/audit/export', headers: auditor.headers })).body;
  });
  afterAll(() => server.close());

  it('recorded the requests and events', () => {
    const types = JSON.parse(decrypted).events.map((e: { type: string }) => e.type);
    expect(types.filter((t: string) => t === 'access.request').length).toBeGreaterThanOrEqual(4);
    expect(types).toContain('admin.key.created');
    expect(types).toContain('auth.signin.failed');
    expect(exported.split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(7);
  });

  it('holds no token, key, signature, cookie, query value or body value', () => {
    const secrets = [...Object.values(SECRETS), trader.accessToken, trader.accessToken.split('.')[2]!];
    for (const [where, text] of [['raw rows', raw], ['decrypted records', decrypted], ['export', exported]] as const) {
      for (const secret of secrets) expect(text.includes(secret), `${where} contain ${secret.slice(0, 12)}…`).toBe(false);
    }
  });

  it('stores the client address, user agent and details only encrypted', () => {
    expect(raw).not.toContain(CLIENT_IP);
    expect(raw).not.toContain('198.51.100.0/24');
    expect(raw).not.toContain('AgentSmith');
    expect(raw).not.toContain('key_1');
    expect(raw).not.toContain('/api/v1/account');
    // …and an auditor reads them back: the access record holds only the network, sign-in the address.
    expect(decrypted).toContain('198.51.100.0/24');
    expect(decrypted).toContain('AgentSmith');
    expect(decrypted).toContain('key_1');
  });

  it('keeps the route pattern but never the raw URL', () => {
    expect(decrypted).toContain('"route":"/api/v1/account"');
    expect(decrypted).not.toContain('apiSecret=');
    expect(decrypted).toContain('"apiSecret":"[redacted]"');
  });
});
