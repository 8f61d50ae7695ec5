import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';

type Session = Awaited<ReturnType<typeof sessionFor>>;

const scaleout = await serviceAvailable('postgres') && await serviceAvailable('redis');

describe.each([
  ['embedded', true],
  ['scaleout', scaleout],
] as const)('token launches (%s)', (backend, available) => {
  let server: TestServer;
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  let seq = 0;
  const sym = () => `T${backend === 'embedded' ? 'E' : 'S'}${(seq++).toString(36).toUpperCase().padStart(3, '0')}`;
  const req = (method: string, url: string, s: Session | undefined, payload?: unknown) =>
    server.app.inject({ method: method as 'GET', url, ...(s ? { headers: s.headers } : {}), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const launch = (s: Session, body: Record<string, unknown>) => req('POST', '/api/v1/tokens', s, { name: 'Test token', decimals: 6, supply: '1000', ...body });
  /** A trader whose tokens-category limit is out of the way (this suite sends more than 10/s). */
  const trader = async (role: 'trader' | 'admin' = 'trader') => {
    const s = await sessionFor(server, { role });
    await server.services.partnerLimits.set(s.account.id, { tokens: 10_000, account: 10_000 }, 'test');
    return s;
  };
  const balance = async (s: Session, asset: string) =>
    (await req('GET', '/api/v1/account/balances', s)).json().balances.find((b: { asset: string }) => b.asset === asset)?.available ?? '0';
  const auditCount = async (type: string) => Number((await server.services.store.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n')).where('type', '=', type).executeTakeFirstOrThrow()).n);

  beforeAll(async () => {
    if (!available) return;
    server = await startTestServer({ clock, backend });
  });
  afterAll(() => server?.close());

  it.skipIf(!available)('launches: the asset, its whole supply credited through the ledger, SYMBOL-USDC listed and tradeable, audited', async () => {
    const s = await trader();
    const symbol = sym();
    const created = await launch(s, { symbol, supply: '1000000', website: 'https://example.com/moon' });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      token: { symbol, name: 'Test token', decimals: 6, chain: 'evm', supply: '1000000', website: 'https://example.com/moon', market: `${symbol}-USDC` },
      market: { symbol: `${symbol}-USDC`, base: symbol, quote: 'USDC', status: 'active', lotSize: '1', tickSize: '0.000001', minNotional: '1' },
    });
    expect(await balance(s, symbol)).toBe('1000000');
    // The creator can sell into the new market at once.
    const sell = await req('POST', '/api/v1/trading/orders', s, { market: `${symbol}-USDC`, side: 'sell', type: 'limit', price: '2', quantity: '10' });
    expect(sell.statusCode).toBe(201);
    expect((await req('GET', `/api/v1/tokens/${symbol}`, s)).json()).toMatchObject({ symbol, supply: '1000000' });
    expect((await req('GET', '/api/v1/tokens?mine=true', s)).json().tokens.map((t: { symbol: string }) => t.symbol)).toEqual([symbol]);
    const events = await server.services.store.db.selectFrom('audit_events').select(['type', 'account_id']).where('type', '=', 'trading.token.created').where('account_id', '=', s.account.id).execute();
    expect(events).toHaveLength(1);
    expect((await server.services.trading.ledger.verify()).ok).toBe(true);
  });

  it.skipIf(!available)('name 1–64 characters, symbol 2–10 uppercase letters or digits, decimals 0–9: exactly at each bound and one past', async () => {
    const s = await trader();
    const cases: [Record<string, unknown>, number][] = [
      [{ name: 'x' }, 201],
      [{ name: 'x'.repeat(64) }, 201],
      [{ name: '' }, 400],
      [{ name: 'x'.repeat(65) }, 400],
      // 64 characters after trimming, as the rule counts them: spaces around do not count.
      [{ name: ` ${'x'.repeat(64)} ` }, 201],
      [{ name: '   ' }, 400],
      [{ name: 'bad\u0007name' }, 400],
      // Invisible or direction-changing characters make a name that lies about itself.
      [{ name: '\u200f' }, 400],
      [{ name: 'Moon\u200bCoin' }, 400],
      [{ name: 'USDC\u061c' }, 400],
      [{ name: 'Rainbow 🏳️‍🌈' }, 201],
    ];
    for (const [body, status] of cases) expect((await launch(s, { symbol: sym(), ...body })).statusCode, JSON.stringify(body)).toBe(status);
    const s2 = await trader();
    expect((await launch(s2, { symbol: 'AB' })).statusCode).toBe(201);
    expect((await launch(s2, { symbol: `${backend === 'embedded' ? 'E' : 'S'}123456789` })).statusCode).toBe(201);
    for (const symbol of ['A', `${backend === 'embedded' ? 'E' : 'S'}1234567890`, 'ab', 'A-B', 'AB ']) {
      expect((await launch(s2, { symbol })).statusCode, symbol).toBe(400);
    }
    const s3 = await trader();
    expect((await launch(s3, { symbol: sym(), decimals: 0 })).statusCode).toBe(201);
    expect((await launch(s3, { symbol: sym(), decimals: 9 })).statusCode).toBe(201);
    for (const decimals of [-1, 10, 18, 1.5, '6']) expect((await launch(s3, { symbol: sym(), decimals })).statusCode, String(decimals)).toBe(400);
    // At the most decimals, the launch market still takes a billion tokens at a millionth of a USDC
    // in one order (1,000 USDC): with 18 decimals no order could move more than 9.2 tokens.
    const fine = sym();
    expect((await launch(s3, { symbol: fine, decimals: 9, supply: '1000000000000' })).statusCode).toBe(201);
    const sell = await req('POST', '/api/v1/trading/orders', s3, { market: `${fine}-USDC`, side: 'sell', type: 'limit', price: '0.000001', quantity: '1000000000' });
    expect(sell.json()).toMatchObject({ status: 'open', quantity: '1000000000' });
  });

  it.skipIf(!available)('supply: a positive whole number of tokens, at most 10^15 for traders; admins may exceed it', async () => {
    const s = await trader();
    expect((await launch(s, { symbol: sym(), supply: '1' })).statusCode).toBe(201);
    const max = await launch(s, { symbol: sym(), supply: '1000000000000000', decimals: 9 });
    expect(max.statusCode).toBe(201);
    expect(max.json().token.supply).toBe('1000000000000000');
    const over = await launch(s, { symbol: sym(), supply: '1000000000000001' });
    expect(over.statusCode).toBe(403);
    expect(over.json().code).toBe('forbidden_role');
    for (const supply of ['0', '-1', '1.5', '01', 1000, '1e3']) {
      const r = await launch(s, { symbol: sym(), supply });
      expect(r.statusCode, String(supply)).toBe(400);
      expect(r.json().code).toBe('validation_failed');
    }
    const admin = await trader('admin');
    const big = await launch(admin, { symbol: sym(), supply: '1000000000000001' });
    expect(big.statusCode).toBe(201);
    expect(await balance(admin, big.json().token.symbol)).toBe('1000000000000001');
    expect((await server.services.trading.ledger.verify()).ok).toBe(true);
  });

  it.skipIf(!available)('refuses reserved and existing symbols with conflict, and changes nothing', async () => {
    const s = await trader();
    const before = await auditCount('trading.token.created');
    for (const symbol of ['USDC', 'USDT', 'ETH']) {
      const r = await launch(s, { symbol });
      expect(r.statusCode, symbol).toBe(409);
      expect(r.json().code).toBe('conflict');
    }
    const symbol = sym();
    expect((await launch(s, { symbol })).statusCode).toBe(201);
    const other = await trader();
    const again = await launch(other, { symbol, decimals: 2 });
    expect(again.statusCode).toBe(409);
    expect(await balance(other, symbol)).toBe('0');
    expect((await server.services.trading.assets.asset(symbol))!.decimals).toBe(6);
    expect(await auditCount('trading.token.created')).toBe(before + 1);
  });

  it.skipIf(!available)('a launch that fails after listing its market leaves nothing behind, not even in the asset cache', async () => {
    const s = await trader();
    const symbol = sym();
    const recordIn = server.services.audit.recordIn.bind(server.services.audit);
    const spy = vi.spyOn(server.services.audit, 'recordIn').mockImplementation(async (trx, event) => {
      if (event.type === 'trading.token.created') throw new Error('disk full');
      return recordIn(trx, event);
    });
    try {
      expect((await launch(s, { symbol, decimals: 9 })).statusCode).toBe(500);
    } finally {
      spy.mockRestore();
    }
    expect(await server.services.trading.assets.asset(symbol)).toBeUndefined();
    expect((await req('GET', `/api/v1/tokens/${symbol}`, s)).statusCode).toBe(404);
    // The same symbol launched again with other decimals gets them everywhere.
    const again = await launch(s, { symbol, decimals: 2, supply: '5' });
    expect(again.statusCode).toBe(201);
    expect(again.json().market).toMatchObject({ lotSize: '1', tickSize: '0.000001' });
    expect((await server.services.trading.assets.asset(symbol))!.decimals).toBe(2);
    expect(await balance(s, symbol)).toBe('5');
    expect((await server.services.trading.ledger.verify()).ok).toBe(true);
  });

  it.skipIf(!available)('daily creation cap: the 5th launch in 24 h passes, the 6th is refused, the window rolls', async () => {
    const s = await trader();
    const start = clock.now();
    for (let i = 0; i < 5; i++) expect((await launch(s, { symbol: sym() })).statusCode).toBe(201);
    const symbol = sym();
    const sixth = await launch(s, { symbol });
    expect(sixth.statusCode).toBe(403);
    expect(sixth.json().code).toBe('token_creation_limit_exceeded');
    expect(await server.services.trading.assets.asset(symbol)).toBeUndefined();
    expect(await balance(s, symbol)).toBe('0');
    // The old access token expires meanwhile: sign in again at each point.
    clock.set(start + 86_400_000 - 1);
    expect((await launch(await sessionFor(server, { wallet: s.account.wallet }), { symbol })).json().code).toBe('token_creation_limit_exceeded');
    clock.set(start + 86_400_000);
    expect((await launch(await sessionFor(server, { wallet: s.account.wallet }), { symbol })).statusCode).toBe(201);
  });

  it.skipIf(!available)('concurrent launches by one account never pass the cap', async () => {
    const s = await trader();
    const results = await Promise.all(Array.from({ length: 8 }, () => launch(s, { symbol: sym() })));
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(5);
    expect(results.filter((r) => r.statusCode === 403).every((r) => r.json().code === 'token_creation_limit_exceeded')).toBe(true);
    expect(results.filter((r) => r.statusCode === 403)).toHaveLength(3);
  });

  it.skipIf(!available)('website and imageUrl must name a public host, on launch and on PATCH', async () => {
    const s = await trader();
    const local = ['https://localhost/', 'https://192.168.1.1/reboot', 'https://169.254.169.254/latest/meta-data/', 'https://[::1]/', 'https://router/admin'];
    for (const url of local) {
      for (const field of ['website', 'imageUrl']) {
        const r = await launch(s, { symbol: sym(), [field]: url });
        expect(r.statusCode, `${field} ${url}`).toBe(400);
        expect(r.json().code).toBe('validation_failed');
      }
    }
    const symbol = sym();
    expect((await launch(s, { symbol, website: 'https://moon.example/', imageUrl: 'https://cdn.example/moon.png' })).statusCode).toBe(201);
    for (const url of local) {
      for (const field of ['website', 'imageUrl']) {
        const r = await req('PATCH', `/api/v1/tokens/${symbol}`, s, { [field]: url });
        expect(r.statusCode, `${field} ${url}`).toBe(400);
      }
    }
    expect((await req('GET', `/api/v1/tokens/${symbol}`, s)).json()).toMatchObject({ website: 'https://moon.example/', imageUrl: 'https://cdn.example/moon.png' });
  });

  it.skipIf(!available)('PATCH: only the creator, https-only URLs, audited; developers may not launch', async () => {
    const s = await trader();
    const symbol = sym();
    expect((await launch(s, { symbol })).statusCode).toBe(201);
    const ok = await req('PATCH', `/api/v1/tokens/${symbol}`, s, { name: 'Renamed', description: 'To the moon', website: 'https://moon.example', imageUrl: 'https://cdn.example/moon.png' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ name: 'Renamed', description: 'To the moon', website: 'https://moon.example/', imageUrl: 'https://cdn.example/moon.png' });
    for (const body of [{ website: 'http://moon.example' }, { imageUrl: 'javascript:alert(1)' }, { website: 'https://user:pw@moon.example' }, { website: 'moon.example' }, { imageUrl: 'data:image/png;base64,AAAA' }, {}, { name: '' }, { name: 'x'.repeat(65) }, { symbol: 'NEW' }]) {
      const r = await req('PATCH', `/api/v1/tokens/${symbol}`, s, body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
    }
    const cleared = await req('PATCH', `/api/v1/tokens/${symbol}`, s, { website: null, name: 'x'.repeat(64) });
    expect(cleared.json()).toMatchObject({ website: null, name: 'x'.repeat(64), imageUrl: 'https://cdn.example/moon.png' });
    const stranger = await trader();
    const refused = await req('PATCH', `/api/v1/tokens/${symbol}`, stranger, { name: 'Mine now' });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().code).toBe('not_token_creator');
    expect((await req('PATCH', '/api/v1/tokens/NOPE0', s, { name: 'x' })).statusCode).toBe(404);
    expect((await req('GET', `/api/v1/tokens/${symbol}`, stranger)).json().name).toBe('x'.repeat(64));
    const updates = await server.services.store.db.selectFrom('audit_events').select('id').where('type', '=', 'trading.token.updated').where('account_id', '=', s.account.id).execute();
    expect(updates).toHaveLength(2);

    const dev = await sessionFor(server, { role: 'developer' });
    const devLaunch = await launch(dev, { symbol: sym() });
    expect(devLaunch.statusCode).toBe(403);
    expect(devLaunch.json().code).toBe('forbidden_role');
  });

  it.skipIf(!available)('token routes are the tokens rate category (10/s)', async () => {
    const s = await sessionFor(server);
    const r = await req('GET', '/api/v1/tokens', s);
    expect(r.statusCode).toBe(200);
    expect(r.headers['ratelimit-policy']).toContain('"tokens";q=10;w=1');
  });

  it.skipIf(!available)('the token list pages newest first with a cursor, every token once', async () => {
    const mine: string[] = [];
    // Three launched in one millisecond (the cursor must break the tie), two later; two accounts.
    for (const [i, s] of [await trader(), await trader()].entries()) {
      for (let k = 0; k < (i === 0 ? 3 : 2); k++) {
        const symbol = sym();
        expect((await launch(s, { symbol })).statusCode).toBe(201);
        mine.push(symbol);
      }
      clock.advance(5);
    }
    const reader = await trader();
    const all = (await req('GET', '/api/v1/tokens?limit=500', reader)).json();
    expect(all.next).toBeNull();
    const seen: string[] = [];
    let before: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const r = await req('GET', `/api/v1/tokens?limit=2${before ? `&before=${encodeURIComponent(before)}` : ''}`, reader);
      expect(r.statusCode).toBe(200);
      const page = r.json();
      // Never an empty page: the last one (full or not) has next null.
      expect(page.tokens.length).toBeGreaterThan(0);
      seen.push(...page.tokens.map((t: { symbol: string }) => t.symbol));
      if (page.next === null) break;
      expect(page.tokens).toHaveLength(2);
      before = page.next;
    }
    expect(seen).toEqual(all.tokens.map((t: { symbol: string }) => t.symbol));
    expect(new Set(seen).size).toBe(seen.length);
    for (const symbol of mine) expect(seen).toContain(symbol);
    // Newest first, and within one millisecond by symbol.
    const times = all.tokens.map((t: { createdAt: number }) => t.createdAt);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    // Past 2^53 a timestamp is not exact (…993 would page from …992): refused, not rounded.
    for (const bad of ['x', '1.', '.ABC', '12.abc', '1'.repeat(20) + '.AB', '9007199254740993.AB', '9999999999999999.AB']) {
      const r = await req('GET', `/api/v1/tokens?before=${encodeURIComponent(bad)}`, reader);
      expect(r.statusCode, bad).toBe(400);
      expect(r.json().code).toBe('validation_failed');
    }
    // The largest exact one is a position after every token: the whole list.
    const top = await req('GET', `/api/v1/tokens?limit=500&before=${Number.MAX_SAFE_INTEGER}.AB`, reader);
    expect(top.statusCode).toBe(200);
    expect(top.json().tokens.map((t: { symbol: string }) => t.symbol)).toEqual(all.tokens.map((t: { symbol: string }) => t.symbol));
  });

  it.skipIf(!available)('the ledger verifies after all of it', async () => {
    expect(await server.services.trading.ledger.verify()).toMatchObject({ ok: true });
  });
});
