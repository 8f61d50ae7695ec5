import { base58 } from '@scure/base';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { SYSTEM_OWNERS } from '../../src/trading/ledger/index.js';
import { DISPATCH_CLAIM_STALE_MS, MAX_SAVED_ADDRESSES } from '../../src/trading/withdrawals/index.js';
import { sessionFor } from '../support/auth.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { serviceAvailable } from '../support/services.js';
import { fund, USDC } from '../support/trading.js';

type Session = Awaited<ReturnType<typeof sessionFor>>;

const scaleout = (await serviceAvailable('postgres')) && (await serviceAvailable('redis'));
const DEST = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';
const DEST2 = '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359';

describe.each([
  ['embedded', true],
  ['scaleout', scaleout],
] as const)('withdrawals (%s)', (backend, available) => {
  let server: TestServer;
  let admin: Session;
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
  const req = (method: string, url: string, s: Session | undefined, payload?: unknown) =>
    server.app.inject({ method: method as 'GET', url, ...(s ? { headers: s.headers } : {}), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const withdraw = (s: Session, body: Record<string, unknown>) => req('POST', '/api/v1/account/withdrawals', s, { asset: 'USDC', address: DEST, ...body });
  /** A trader with USDC, signed in just now, its rate limits out of the way. */
  const trader = async (usdc = '0', wallet?: string) => {
    const s = await sessionFor(server, wallet ? { wallet } : {});
    await server.services.partnerLimits.set(s.account.id, { account: 10_000, tokens: 10_000, trading: 10_000 }, 'test');
    if (usdc !== '0') await fund(server.services.trading, s.account.id, 'USDC', USDC(usdc));
    return s;
  };
  const bal = async (s: Session, asset = 'USDC') => {
    const b = (await req('GET', '/api/v1/account/balances', s)).json().balances.find((x: { asset: string }) => x.asset === asset);
    return b ? { available: b.available as string, held: b.held as string } : { available: '0', held: '0' };
  };
  /** The admin signed in now (tests move the clock past token lifetimes). */
  const adm = () => sessionFor(server, { wallet: admin.account.wallet });
  /**
   * Runs `fn` while the first statement (after `skip` others) on `withdrawals` built outside a
   * transaction through `method` throws, as a dropped database connection would.
   */
  const failingOnce = async <T,>(method: 'updateTable' | 'selectFrom', fn: () => Promise<T>, skip = 0) => {
    const db = server.services.store.db as unknown as Record<string, (table: string) => unknown>;
    const original = db[method]!.bind(db);
    let failures = 0;
    let seen = 0;
    const spy = vi.spyOn(db, method).mockImplementation((table: string) => {
      if (table === 'withdrawals' && failures === 0 && seen++ >= skip) {
        failures++;
        throw new Error('connection terminated unexpectedly');
      }
      return original(table);
    });
    try {
      return { result: await fn(), failures };
    } finally {
      spy.mockRestore();
    }
  };
  const setTier = async (s: Session, tier: number) => req('PUT', `/api/v1/admin/accounts/${s.account.wallet}/withdrawal-tier`, await adm(), { tier });

  beforeAll(async () => {
    if (!available) return;
    server = await startTestServer({ clock, backend });
    admin = await sessionFor(server, { role: 'admin' });
  });
  afterAll(() => server?.close());

  it.skipIf(!available)('clientWithdrawalId: a retry answers the original (200, Idempotent-Replayed), never a second withdrawal; another request under the same id is a conflict', async () => {
    const s = await trader('100');
    const first = await withdraw(s, { amount: '10', clientWithdrawalId: 'w-1' });
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(first.json()).toMatchObject({ amount: '10', status: 'sent', clientWithdrawalId: 'w-1' });
    // The same request again (the answer was lost), the address spelt in lowercase: the original.
    const again = await withdraw(s, { amount: '10.0', address: DEST.toLowerCase(), clientWithdrawalId: 'w-1' });
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    expect(await bal(s)).toEqual({ available: '90', held: '0' });
    // The id names that request only: another amount or address under it changes nothing.
    expect((await withdraw(s, { amount: '11', clientWithdrawalId: 'w-1' })).json()).toMatchObject({ code: 'conflict', status: 409, withdrawalId: first.json().id });
    expect((await withdraw(s, { amount: '10', address: DEST2, clientWithdrawalId: 'w-1' })).json()).toMatchObject({ code: 'conflict' });
    // Retries racing each other: one withdrawal.
    const racing = await Promise.all([1, 2, 3].map(() => withdraw(s, { amount: '5', clientWithdrawalId: 'w-2' })));
    expect(racing.map((r) => r.statusCode).sort()).toEqual([200, 200, 201]);
    expect(new Set(racing.map((r) => r.json().id)).size).toBe(1);
    expect(await bal(s)).toEqual({ available: '85', held: '0' });
    // Ids are per account; without one, every request is new; a malformed id is refused.
    const other = await trader('20');
    expect((await withdraw(other, { amount: '10', clientWithdrawalId: 'w-1' })).statusCode).toBe(201);
    expect((await withdraw(other, { amount: '1' })).statusCode).toBe(201);
    expect((await withdraw(other, { amount: '1' })).statusCode).toBe(201);
    expect(await bal(other)).toEqual({ available: '8', held: '0' });
    for (const bad of ['', 'a b', 'x'.repeat(65), 'é']) expect((await withdraw(other, { amount: '1', clientWithdrawalId: bad })).json().code).toBe('validation_failed');
    const list = (await req('GET', '/api/v1/account/withdrawals', s)).json().withdrawals;
    expect(list.map((w: { clientWithdrawalId: string | null }) => w.clientWithdrawalId)).toEqual(['w-2', 'w-1']);
  });

  it.skipIf(!available)('tier 0: exactly the limit (1000 USDC) is auto-approved and sent; one minor unit more is refused and changes nothing', async () => {
    const s = await trader('1500');
    const ok = await withdraw(s, { amount: '1000', address: DEST.toLowerCase() });
    expect(ok.statusCode).toBe(201);
    expect(ok.json()).toMatchObject({ asset: 'USDC', amount: '1000', usdcValue: '1000', chain: 'evm', address: DEST, status: 'sent' });
    expect(ok.json().txHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await bal(s)).toEqual({ available: '500', held: '0' });
    const over = await withdraw(s, { amount: '0.000001' });
    expect(over.statusCode).toBe(403);
    expect(over.json()).toMatchObject({ code: 'withdrawal_limit_exceeded', tier: 0, remaining: '0' });
    expect(await bal(s)).toEqual({ available: '500', held: '0' });
    expect((await req('GET', '/api/v1/account/withdrawal-limit', s)).json()).toMatchObject({ tier: 0, limit: '1000', used: '1000', remaining: '0', autoApproveUpTo: '1000' });

    const fresh = await trader('2000');
    const justOver = await withdraw(fresh, { amount: '1000.000001' });
    expect(justOver.json().code).toBe('withdrawal_limit_exceeded');
    expect(await bal(fresh)).toEqual({ available: '2000', held: '0' });
    expect((await req('GET', '/api/v1/account/withdrawals', fresh)).json().withdrawals).toEqual([]);

    // The window rolls: 24 h after the first withdrawal its value no longer counts.
    clock.advance(86_400_000);
    const later = await sessionFor(server, { wallet: s.account.wallet });
    expect((await withdraw(later, { amount: '500' })).json().status).toBe('sent');
  });

  it.skipIf(!available)('an admin approves or rejects with no body at all, as with {} (the body is optional)', async () => {
    const s = await trader('5000');
    await setTier(s, 1);
    const first = await withdraw(s, { amount: '2000' });
    const second = await withdraw(s, { amount: '2000' });
    expect([first.json().status, second.json().status]).toEqual(['pending', 'pending']);
    const approved = await req('POST', `/api/v1/admin/withdrawals/${first.json().id}/approve`, await adm());
    expect(approved.statusCode, approved.body).toBe(200);
    expect(approved.json()).toMatchObject({ status: 'sent' });
    const rejected = await req('POST', `/api/v1/admin/withdrawals/${second.json().id}/reject`, await adm());
    expect(rejected.statusCode, rejected.body).toBe(200);
    expect(rejected.json()).toMatchObject({ status: 'rejected' });
    expect(await bal(s)).toEqual({ available: '3000', held: '0' });
  });

  it.skipIf(!available)('a tier change applies at once; above the auto-approval threshold waits for an admin who approves it', async () => {
    const s = await trader('60000');
    expect((await withdraw(s, { amount: '1000.000001' })).json().code).toBe('withdrawal_limit_exceeded');
    expect((await setTier(s, 1)).json()).toMatchObject({ tier: 1, limit: '50000' });
    const big = await withdraw(s, { amount: '50000' });
    expect(big.statusCode).toBe(201);
    expect(big.json()).toMatchObject({ status: 'pending', txHash: null });
    expect(await bal(s)).toEqual({ available: '10000', held: '50000' });
    expect((await withdraw(s, { amount: '0.000001' })).json().code).toBe('withdrawal_limit_exceeded');

    const listed = (await req('GET', '/api/v1/admin/withdrawals', await adm())).json().withdrawals;
    expect(listed.map((w: { id: string }) => w.id)).toContain(big.json().id);
    // Not by the owner's own session, and not by a trader.
    expect((await req('POST', `/api/v1/admin/withdrawals/${big.json().id}/approve`, s, {})).statusCode).toBe(403);
    const approved = await req('POST', `/api/v1/admin/withdrawals/${big.json().id}/approve`, await adm(), {});
    expect(approved.statusCode).toBe(200);
    expect(approved.json()).toMatchObject({ status: 'sent' });
    expect(await bal(s)).toEqual({ available: '10000', held: '0' });
    expect((await req('POST', `/api/v1/admin/withdrawals/${big.json().id}/approve`, await adm(), {})).statusCode).toBe(409);

    // Lowering the tier applies at once too.
    await setTier(s, 0);
    expect((await withdraw(s, { amount: '1' })).json().code).toBe('withdrawal_limit_exceeded');
    const types = (await server.services.store.db.selectFrom('audit_events').select('type').where('account_id', '=', s.account.id).execute()).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['admin.withdrawal_tier.changed', 'trading.withdrawal.requested', 'trading.withdrawal.updated', 'admin.withdrawal.approved']));
  });

  it.skipIf(!available)('cancel by the owner and reject by an admin release the hold; decided withdrawals cannot change; admins never decide their own', async () => {
    const s = await trader('5000');
    await setTier(s, 2);
    const a = (await withdraw(s, { amount: '2000' })).json();
    const b = (await withdraw(s, { amount: '1500' })).json();
    expect([a.status, b.status]).toEqual(['pending', 'pending']);
    expect(await bal(s)).toEqual({ available: '1500', held: '3500' });
    const other = await trader();
    expect((await req('POST', `/api/v1/account/withdrawals/${a.id}/cancel`, other)).statusCode).toBe(404);
    const cancelled = await req('POST', `/api/v1/account/withdrawals/${a.id}/cancel`, s);
    expect(cancelled.json()).toMatchObject({ status: 'cancelled' });
    expect((await req('POST', `/api/v1/account/withdrawals/${a.id}/cancel`, s)).statusCode).toBe(409);
    expect((await req('POST', `/api/v1/admin/withdrawals/${a.id}/approve`, await adm(), {})).statusCode).toBe(409);
    const rejected = await req('POST', `/api/v1/admin/withdrawals/${b.id}/reject`, await adm(), { reason: 'unverified destination' });
    expect(rejected.json()).toMatchObject({ status: 'rejected', reason: 'unverified destination' });
    expect(await bal(s)).toEqual({ available: '5000', held: '0' });
    // Cancelled and rejected withdrawals no longer count against the limit.
    expect((await req('GET', '/api/v1/account/withdrawal-limit', s)).json().used).toBe('0');

    await fund(server.services.trading, admin.account.id, 'USDC', USDC(5000));
    const admin2 = await sessionFor(server, { role: 'admin' });
    // An admin may not raise their own tier either (it would lift their own withdrawal limit alone).
    const selfTier = await setTier(admin, 2);
    expect(selfTier.statusCode).toBe(403);
    expect(selfTier.json().code).toBe('four_eyes_required');
    expect((await req('GET', '/api/v1/account/withdrawal-limit', await adm())).json()).toMatchObject({ tier: 0 });
    expect((await req('PUT', `/api/v1/admin/accounts/${admin.account.wallet}/withdrawal-tier`, admin2, { tier: 2 })).json()).toMatchObject({ tier: 2 });
    const me = await adm();
    const own = (await withdraw(me, { amount: '2000' })).json();
    expect(own.status).toBe('pending');
    const self = await req('POST', `/api/v1/admin/withdrawals/${own.id}/approve`, me, {});
    expect(self.statusCode).toBe(403);
    expect(self.json().code).toBe('four_eyes_required');
    expect((await req('POST', `/api/v1/admin/withdrawals/${own.id}/approve`, admin2, {})).json().status).toBe('sent');
  });

  it.skipIf(!available)('an approved withdrawal whose sending process died is sent by an admin retry once its claim is stale', async () => {
    const s = await trader('5000');
    await setTier(s, 1);
    const w = (await withdraw(s, { amount: '2000' })).json();
    expect(w.status).toBe('pending');
    // A process approved it, claimed it for sending, and died before the adapter answered.
    await server.services.store.db.updateTable('withdrawals').set({ status: 'approved', dispatching_at: clock.now() }).where('id', '=', w.id).execute();
    const early = await req('POST', `/api/v1/admin/withdrawals/${w.id}/approve`, await adm(), {});
    expect(early.json()).toMatchObject({ status: 'approved' }); // the claim may still be live: not sent twice
    expect(await bal(s)).toEqual({ available: '3000', held: '2000' });
    clock.advance(DISPATCH_CLAIM_STALE_MS + 1);
    const retried = await req('POST', `/api/v1/admin/withdrawals/${w.id}/approve`, await adm(), {});
    expect(retried.json()).toMatchObject({ status: 'sent' });
    expect(await bal(s)).toEqual({ available: '3000', held: '0' });
  });

  it.skipIf(!available)('a rejection reason with control or bidirectional characters is refused and changes nothing', async () => {
    const s = await trader('5000');
    await setTier(s, 1);
    const w = (await withdraw(s, { amount: '2000' })).json();
    expect(w.status).toBe('pending');
    for (const reason of ['see \u202Egnp.exe', 'line\u0000end']) {
      const bad = await req('POST', `/api/v1/admin/withdrawals/${w.id}/reject`, await adm(), { reason });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().code).toBe('validation_failed');
    }
    expect((await req('GET', `/api/v1/account/withdrawals/${w.id}`, s)).json()).toMatchObject({ status: 'pending' });
    expect(await bal(s)).toEqual({ available: '3000', held: '2000' });
    const ok = await req('POST', `/api/v1/admin/withdrawals/${w.id}/reject`, await adm(), { reason: '  unverified\ndestination ' });
    expect(ok.json()).toMatchObject({ status: 'rejected', reason: 'unverified\ndestination' });
    expect(await bal(s)).toEqual({ available: '5000', held: '0' });
  });

  it.skipIf(!available)('step-up: over a session, the sign-in must be at most 5 minutes old', async () => {
    const s = await trader('100');
    const nowSec = Math.floor(clock.now() / 1000);
    const at = await sessionFor(server, { wallet: s.account.wallet, authTime: nowSec - 300 });
    expect((await withdraw(at, { amount: '1' })).statusCode).toBe(201);
    const stale = await sessionFor(server, { wallet: s.account.wallet, authTime: nowSec - 301 });
    const refused = await withdraw(stale, { amount: '1' });
    expect(refused.statusCode).toBe(401);
    expect(refused.json().code).toBe('step_up_required');
    expect((await req('POST', '/api/v1/account/withdrawal-addresses', stale, { chain: 'evm', address: DEST })).json().code).toBe('step_up_required');
    expect((await req('PUT', '/api/v1/account/withdrawal-addresses/settings', stale, { enabled: false })).json().code).toBe('step_up_required');
    expect(await bal(s)).toEqual({ available: '99', held: '0' });
    // Reading needs no step-up.
    expect((await req('GET', '/api/v1/account/withdrawals', stale)).statusCode).toBe(200);
  });

  it.skipIf(!available)('step-up: a sign-in too old to start a withdrawal still gets the answer to a repeat of one it started (its clientWithdrawalId), and nothing more', async () => {
    const s = await trader('100');
    const nowSec = Math.floor(clock.now() / 1000);
    const fresh = await sessionFor(server, { wallet: s.account.wallet, authTime: nowSec - 290 });
    const first = await withdraw(fresh, { amount: '10', clientWithdrawalId: 'late-1' });
    expect(first.statusCode).toBe(201);
    // The first answer was lost; the retry comes after the sign-in has aged past 5 minutes.
    const stale = await sessionFor(server, { wallet: s.account.wallet, authTime: nowSec - 301 });
    const again = await withdraw(stale, { amount: '10', clientWithdrawalId: 'late-1' });
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toMatchObject({ id: first.json().id, clientWithdrawalId: 'late-1' });
    // The same id for another request is the conflict it always is; a new id, or none, starts
    // nothing without a fresh sign-in.
    expect((await withdraw(stale, { amount: '11', clientWithdrawalId: 'late-1' })).json()).toMatchObject({ code: 'conflict', withdrawalId: first.json().id });
    for (const body of [{ amount: '1', clientWithdrawalId: 'late-2' }, { amount: '1' }]) {
      const refused = await withdraw(stale, body);
      expect(refused.statusCode).toBe(401);
      expect(refused.json().code).toBe('step_up_required');
    }
    expect(await bal(s)).toEqual({ available: '90', held: '0' });
    const list = (await req('GET', '/api/v1/account/withdrawals', stale)).json().withdrawals;
    expect(list.map((w: { clientWithdrawalId: string | null }) => w.clientWithdrawalId)).toEqual(['late-1']);
  });

  it.skipIf(!available)('addresses are validated for the asset’s chain: EIP-55 for EVM assets, base58 keys for Solana tokens', async () => {
    const s = await trader('100');
    const badChecksum = DEST.replace('aA', 'Aa');
    const r = await withdraw(s, { amount: '1', address: badChecksum });
    expect(r.statusCode).toBe(400);
    expect(r.json().detail).toContain('checksum');
    const solKey = base58.encode(new Uint8Array(32).fill(9));
    expect((await withdraw(s, { amount: '1', address: solKey })).statusCode).toBe(400);
    expect((await withdraw(s, { amount: '1', asset: 'NOPE' })).statusCode).toBe(400);
    expect((await withdraw(s, { amount: '1.0000001' })).statusCode).toBe(400);
    expect((await withdraw(s, { amount: 1 })).statusCode).toBe(400);
    expect(await bal(s)).toEqual({ available: '100', held: '0' });

    // A Solana token: priced after one trade, withdrawable to a base58 key, valued at the last price.
    const symbol = backend === 'embedded' ? 'SOLTE' : 'SOLTS';
    expect((await req('POST', '/api/v1/tokens', s, { name: 'Sol token', symbol, decimals: 9, supply: '1000', chain: 'solana' })).statusCode).toBe(201);
    const unpriced = await withdraw(s, { asset: symbol, amount: '1', address: solKey });
    expect(unpriced.statusCode).toBe(403);
    // Its body carries what API.md's table promises for the code, as any other refusal of it does.
    expect(unpriced.json()).toMatchObject({ code: 'withdrawal_limit_exceeded', tier: 0, limit: '1000', remaining: '1000' });
    const buyer = await trader('100');
    expect((await req('POST', '/api/v1/trading/orders', s, { market: `${symbol}-USDC`, side: 'sell', type: 'limit', price: '2.5', quantity: '10' })).statusCode).toBe(201);
    expect((await req('POST', '/api/v1/trading/orders', buyer, { market: `${symbol}-USDC`, side: 'buy', type: 'market', quantity: '4' })).json().status).toBe('filled');
    expect((await withdraw(buyer, { asset: symbol, amount: '1', address: DEST })).statusCode).toBe(400);
    const sent = await withdraw(buyer, { asset: symbol, amount: '1', address: solKey });
    expect(sent.json()).toMatchObject({ status: 'sent', chain: 'solana', usdcValue: '2.5', address: solKey });
    expect(base58.decode(sent.json().txHash)).toHaveLength(64);
    // The position's cost shrank with the quantity: the average cost of what is left is unchanged.
    const position = (await req('GET', '/api/v1/trading/positions', buyer)).json().positions.find((p: { asset: string }) => p.asset === symbol);
    expect(position).toMatchObject({ quantity: '3' });
    const before = (4n * 2_500_000n * 10020n) / 10000n; // what the 4 cost, taker fee included
    expect(BigInt(Math.round(Number(position.costBasis) * 1e6))).toBe(before - before / 4n);
  });

  // Two accounts of one person trade a few lots with each other at a tiny price just before
  // withdrawing: at the last price, 1000 tokens worth 2,500 USDC would pass the 1,000 USDC tier. In a
  // market that last traded more than 24 h before, the wash trade is the only trade of the window:
  // the price in force when it began counts too.
  it.skipIf(!available).each([
    { quiet: false, name: 'the value takes the highest price of the last 24 h', symbol: 'WASH', sinceMs: 60_000, solFill: 7 },
    { quiet: true, name: 'when the market last traded more than 24 h before: the price in force then counts', symbol: 'STALE', sinceMs: 48 * 3_600_000, solFill: 9 },
  ])('a trade at a low price does not make a withdrawal cheap $name', async ({ quiet, symbol: base, sinceMs, solFill }) => {
    const symbol = `${base}${backend === 'embedded' ? 'E' : 'S'}`;
    let issuer = await trader('0');
    let accomplice = await trader('100');
    const solKey = base58.encode(new Uint8Array(32).fill(solFill));
    expect((await req('POST', '/api/v1/tokens', issuer, { name: base, symbol, decimals: 0, supply: '10000', chain: 'solana' })).statusCode).toBe(201);
    const market = `${symbol}-USDC`;
    expect((await req('POST', '/api/v1/trading/orders', issuer, { market, side: 'sell', type: 'limit', price: '2.5', quantity: '4' })).statusCode).toBe(201);
    expect((await req('POST', '/api/v1/trading/orders', accomplice, { market, side: 'buy', type: 'market', quantity: '4' })).json().status).toBe('filled');
    clock.advance(sinceMs);
    if (quiet) {
      // Sessions signed in two days ago have expired.
      issuer = await sessionFor(server, { wallet: issuer.account.wallet });
      accomplice = await sessionFor(server, { wallet: accomplice.account.wallet });
    }
    expect((await req('POST', '/api/v1/trading/orders', issuer, { market, side: 'sell', type: 'limit', price: '0.01', quantity: '100' })).statusCode).toBe(201);
    expect((await req('POST', '/api/v1/trading/orders', accomplice, { market, side: 'buy', type: 'market', quantity: '100' })).json().status).toBe('filled');
    const refused = await withdraw(issuer, { asset: symbol, amount: '1000', address: solKey });
    expect(refused.statusCode, refused.body).toBe(403);
    expect(refused.json().code).toBe('withdrawal_limit_exceeded');
    expect(await bal(issuer, symbol)).toEqual({ available: '9896', held: '0' });
    // Within the limit at that price: 400 tokens at 2.5 are 1,000 USDC.
    expect((await withdraw(issuer, { asset: symbol, amount: '400', address: solKey })).json()).toMatchObject({ status: 'sent', usdcValue: '1000' });
  });

  it.skipIf(!available)('address book: only saved addresses, each usable after the 24 h hold; switching it off waits out the hold too', async () => {
    const s = await trader('100');
    const on = await req('PUT', '/api/v1/account/withdrawal-addresses/settings', s, { enabled: true });
    expect(on.json()).toMatchObject({ enabled: true, disablesAt: null, addresses: [] });
    const notSaved = await withdraw(s, { amount: '1' });
    expect(notSaved.statusCode).toBe(403);
    expect(notSaved.json().code).toBe('address_not_allowed');
    const added = await req('POST', '/api/v1/account/withdrawal-addresses', s, { chain: 'evm', address: DEST.toLowerCase(), label: 'cold wallet' });
    expect(added.statusCode).toBe(201);
    expect(added.json()).toMatchObject({ chain: 'evm', address: DEST, label: 'cold wallet', usableAt: clock.now() + 86_400_000 });
    expect((await req('POST', '/api/v1/account/withdrawal-addresses', s, { chain: 'evm', address: DEST })).statusCode).toBe(409);
    expect((await withdraw(s, { amount: '1' })).json()).toMatchObject({ code: 'address_not_allowed', usableAt: clock.now() + 86_400_000 });
    const start = clock.now();
    clock.set(start + 86_400_000 - 1);
    let fresh = await sessionFor(server, { wallet: s.account.wallet });
    expect((await withdraw(fresh, { amount: '1' })).json().code).toBe('address_not_allowed');
    clock.set(start + 86_400_000);
    fresh = await sessionFor(server, { wallet: s.account.wallet });
    expect((await withdraw(fresh, { amount: '1' })).json().status).toBe('sent');
    expect((await withdraw(fresh, { amount: '1', address: DEST2 })).json().code).toBe('address_not_allowed');

    const off = await req('PUT', '/api/v1/account/withdrawal-addresses/settings', fresh, { enabled: false });
    expect(off.json()).toMatchObject({ enabled: true, disablesAt: clock.now() + 86_400_000 });
    expect((await withdraw(fresh, { amount: '1', address: DEST2 })).json().code).toBe('address_not_allowed');
    clock.advance(86_400_000);
    fresh = await sessionFor(server, { wallet: s.account.wallet });
    expect((await req('GET', '/api/v1/account/withdrawal-addresses', fresh)).json()).toMatchObject({ enabled: false, disablesAt: null });
    expect((await withdraw(fresh, { amount: '1', address: DEST2 })).json().status).toBe('sent');

    const id = added.json().id;
    expect((await req('DELETE', `/api/v1/account/withdrawal-addresses/${id}`, fresh)).statusCode).toBe(204);
    expect((await req('DELETE', `/api/v1/account/withdrawal-addresses/${id}`, fresh)).statusCode).toBe(404);
    expect(await bal(fresh)).toEqual({ available: '98', held: '0' });
  });

  it.skipIf(!available)('address book: an account saves at most MAX_SAVED_ADDRESSES addresses (409 past it), so its rows and every GET of the book stay bounded', async () => {
    const s = await trader();
    const evm = (i: number) => `0x${(i + 1).toString(16).padStart(40, '0')}`;
    for (let i = 0; i < MAX_SAVED_ADDRESSES; i++) {
      const r = await req('POST', '/api/v1/account/withdrawal-addresses', s, { chain: 'evm', address: evm(i) });
      expect(r.statusCode, r.body).toBe(201);
    }
    const full = await req('POST', '/api/v1/account/withdrawal-addresses', s, { chain: 'evm', address: evm(MAX_SAVED_ADDRESSES) });
    expect(full.statusCode, full.body).toBe(409);
    expect(full.json().code).toBe('conflict');
    const book = (await req('GET', '/api/v1/account/withdrawal-addresses', s)).json();
    expect(book.addresses).toHaveLength(MAX_SAVED_ADDRESSES);
    // Removing one makes room again.
    expect((await req('DELETE', `/api/v1/account/withdrawal-addresses/${book.addresses[0].id}`, s)).statusCode).toBe(204);
    expect((await req('POST', '/api/v1/account/withdrawal-addresses', s, { chain: 'evm', address: evm(MAX_SAVED_ADDRESSES) })).statusCode).toBe(201);
  });

  it.skipIf(!available)('the auto-approval threshold bounds what leaves without an admin per rolling 24 h: splitting a large withdrawal does not skip the review', async () => {
    const s = await trader('60000');
    await setTier(s, 1);
    // 400 + 400 stay within the 1000 USDC threshold: approved and sent at once.
    expect((await withdraw(s, { amount: '400' })).json().status).toBe('sent');
    expect((await withdraw(s, { amount: '400' })).json().status).toBe('sent');
    // The third would take what left without review to 1200: it waits for an admin, as would the
    // 1200 it was split from; so does every further piece.
    const third = (await withdraw(s, { amount: '400' })).json();
    expect(third.status).toBe('pending');
    expect((await withdraw(s, { amount: '200.000001' })).json().status).toBe('pending');
    // Exactly up to the threshold still passes (pending and admin-approved ones are not counted).
    expect((await withdraw(s, { amount: '200' })).json().status).toBe('sent');
    expect((await req('POST', `/api/v1/admin/withdrawals/${third.id}/approve`, await adm(), {})).json().status).toBe('sent');
    expect((await withdraw(s, { amount: '0.000001' })).json().status).toBe('pending');
    // The window rolls: 24 h after they were sent, the automatic ones no longer count.
    clock.advance(86_400_000 + 1);
    const later = await sessionFor(server, { wallet: s.account.wallet });
    expect((await withdraw(later, { amount: '1000' })).json().status).toBe('sent');
  });

  it.skipIf(!available)('concurrent withdrawals racing for one balance never overdraw', async () => {
    const s = await trader('100');
    const results = await Promise.all(Array.from({ length: 10 }, () => withdraw(s, { amount: '15' })));
    const okCount = results.filter((r) => r.statusCode === 201).length;
    expect(okCount).toBe(6);
    expect(results.filter((r) => r.statusCode !== 201).every((r) => r.json().code === 'insufficient_funds')).toBe(true);
    expect(await bal(s)).toEqual({ available: '10', held: '0' });
    expect((await req('GET', '/api/v1/account/withdrawals', s)).json().withdrawals).toHaveLength(6);
  });

  it.skipIf(!available)('concurrent withdrawals racing for one limit never pass it', async () => {
    const s = await trader('5000');
    const results = await Promise.all(Array.from({ length: 8 }, () => withdraw(s, { amount: '300' })));
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(3);
    expect(results.filter((r) => r.statusCode !== 201).every((r) => r.json().code === 'withdrawal_limit_exceeded')).toBe(true);
    expect(await bal(s)).toEqual({ available: '4100', held: '0' });
  });

  it.skipIf(!available)('a send the adapter made but the store failed to record answers the committed withdrawal, approved, and an admin retry records it', async () => {
    const s = await trader('100');
    const audit = server.services.audit as unknown as { recordIn: (trx: unknown, e: { type: string; details: { status?: string } }) => Promise<unknown> };
    const original = audit.recordIn;
    let failures = 0;
    audit.recordIn = async (trx, e) => {
      if (e.type === 'trading.withdrawal.updated' && e.details.status === 'sent' && failures === 0) {
        failures++;
        throw new Error('audit store unavailable');
      }
      return original.call(server.services.audit, trx, e);
    };
    let w: { id: string; status: string };
    try {
      const r = await withdraw(s, { amount: '10' });
      // Committed (funds held, approved): the client must not be told it failed, or it would retry.
      expect(r.statusCode).toBe(201);
      w = r.json();
    } finally {
      audit.recordIn = original;
    }
    expect(failures).toBe(1);
    expect(w).toMatchObject({ status: 'approved', txHash: null });
    expect(await bal(s)).toEqual({ available: '90', held: '10' });
    // Not stuck: the claim was dropped, so the admin's retry sends and records it.
    const retried = await req('POST', `/api/v1/admin/withdrawals/${w.id}/approve`, await adm(), {});
    expect(retried.json()).toMatchObject({ status: 'sent' });
    expect(await bal(s)).toEqual({ available: '90', held: '0' });
  });

  it.skipIf(!available)('a list cursor (before) that is not a withdrawal id is 400 validation_failed, not a store error (PostgreSQL refuses NUL in text)', async () => {
    const s = await trader('100');
    const w = (await withdraw(s, { amount: '1' })).json();
    expect(w.status).toBe('sent');
    for (const [url, who] of [
      ['/api/v1/account/withdrawals?before=wdr_%00', s],
      ['/api/v1/account/withdrawals?before=%00', s],
      ['/api/v1/admin/withdrawals?before=wdr_%00', undefined],
    ] as const) {
      const res = await req('GET', url, who ?? (await adm()));
      expect(res.statusCode, url).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
    // A well-formed cursor still pages.
    const page = await req('GET', `/api/v1/account/withdrawals?before=${w.id}`, s);
    expect(page.statusCode).toBe(200);
    expect(page.json().withdrawals).toEqual([]);
    expect((await req('GET', `/api/v1/account/withdrawals?before=wdr_ZZZZZZZZZZZZZZZZZZZZZZZZZZ`, s)).json().withdrawals.map((x: { id: string }) => x.id)).toEqual([w.id]);
  });

  it.skipIf(!available)('a store failure when claiming a committed withdrawal for sending still answers it (approved, held), and an admin retry sends it', async () => {
    const s = await trader('100');
    // The first statement outside a transaction after the request's commit is the dispatch claim.
    const { result: r, failures } = await failingOnce('updateTable', () => withdraw(s, { amount: '10' }));
    expect(failures).toBe(1);
    // Committed (funds held, approved): the client must not be told it failed, or it would retry and withdraw twice.
    expect(r.statusCode).toBe(201);
    expect(r.json()).toMatchObject({ status: 'approved', txHash: null });
    expect(await bal(s)).toEqual({ available: '90', held: '10' });
    const retried = await req('POST', `/api/v1/admin/withdrawals/${r.json().id}/approve`, await adm(), {});
    expect(retried.json()).toMatchObject({ status: 'sent' });
    expect(await bal(s)).toEqual({ available: '90', held: '0' });
  });

  it.skipIf(!available)('an admin retry that sends an approved withdrawal is attributed to that admin in the audit trail', async () => {
    const s = await trader('100');
    // Auto-approved, but the adapter is down: it stays approved, held, with no admin decision recorded.
    const adapter = server.services.withdrawals['deps'].adapter as { send: (t: unknown) => Promise<{ txHash: string }> };
    const send = adapter.send;
    adapter.send = async () => {
      throw new Error('node unreachable');
    };
    let w: { id: string; status: string };
    try {
      w = (await withdraw(s, { amount: '10' })).json();
    } finally {
      adapter.send = send;
    }
    expect(w.status).toBe('approved');
    const a = await adm();
    expect((await req('POST', `/api/v1/admin/withdrawals/${w.id}/approve`, a, {})).json()).toMatchObject({ status: 'sent' });
    await (server.services.audit as unknown as { settle?: () => Promise<void> }).settle?.();
    const records = (await server.services.audit.list({ type: 'trading.withdrawal.updated', accountId: s.account.id }, { limit: 10 })).records;
    const sent = records.filter((r) => r.details?.withdrawalId === w.id && r.details?.status === 'sent');
    expect(sent).toHaveLength(1);
    // Money left because this admin asked: the record must say who, not only which adapter.
    expect(sent[0]!.details).toMatchObject({ retriedBy: admin.account.id, via: 'admin', sessionId: a.sessionId });
  });

  it.skipIf(!available)('a pending or approved withdrawal counts against the limit until it is decided, however old; a sent one for 24 h after it was sent', async () => {
    const s = await trader('60000');
    await setTier(s, 1);
    const big = (await withdraw(s, { amount: '40000' })).json();
    expect(big.status).toBe('pending');
    // Two days later it is still pending: its funds have not left, and will if an admin approves it.
    clock.advance(2 * 86_400_000);
    let later = await sessionFor(server, { wallet: s.account.wallet });
    expect((await req('GET', '/api/v1/account/withdrawal-limit', later)).json()).toMatchObject({ limit: '50000', used: '40000', remaining: '10000' });
    const over = await withdraw(later, { amount: '10000.000001' });
    expect(over.json()).toMatchObject({ code: 'withdrawal_limit_exceeded', remaining: '10000' });
    expect(await bal(later)).toEqual({ available: '20000', held: '40000' });
    // Sent now, it counts for the 24 h after it left.
    expect((await req('POST', `/api/v1/admin/withdrawals/${big.id}/approve`, await adm(), {})).json().status).toBe('sent');
    expect((await withdraw(later, { amount: '10000.000001' })).json().code).toBe('withdrawal_limit_exceeded');
    clock.advance(86_400_000 + 1);
    later = await sessionFor(server, { wallet: s.account.wallet });
    expect((await req('GET', '/api/v1/account/withdrawal-limit', later)).json()).toMatchObject({ used: '0', remaining: '50000' });
  });

  it.skipIf(!available)('a store failure reading a committed withdrawal back still answers it as committed, so a retry cannot withdraw twice', async () => {
    const s = await trader('60000');
    await setTier(s, 1);
    // Pending (above auto-approval): nothing is dispatched, so the only read of the row after the
    // request's commit is the one that answers it.
    const { result: r, failures } = await failingOnce('selectFrom', () => withdraw(s, { amount: '2000' }));
    expect(failures).toBe(1);
    expect(r.statusCode).toBe(201);
    expect(r.json()).toMatchObject({ status: 'pending', amount: '2000', usdcValue: '2000' });
    expect(r.json().id).toMatch(/^wdr_/);
    expect(await bal(s)).toEqual({ available: '58000', held: '2000' });
  });

  it.skipIf(!available)('a store failure reading a cancelled, rejected or approved withdrawal back still answers the committed decision (not a 500 whose retry is a 409)', async () => {
    const s = await trader('10000');
    await setTier(s, 2);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await withdraw(s, { amount: '2000' })).json().id as string);
    expect(await bal(s)).toEqual({ available: '4000', held: '6000' });
    // The decision runs in a transaction; the first read of the table outside it is the read-back.
    const cancel = await failingOnce('selectFrom', () => req('POST', `/api/v1/account/withdrawals/${ids[0]}/cancel`, s));
    expect(cancel.failures).toBe(1);
    expect(cancel.result.statusCode, cancel.result.body).toBe(200);
    expect(cancel.result.json()).toMatchObject({ id: ids[0], status: 'cancelled', amount: '2000' });
    const reject = await failingOnce('selectFrom', async () => req('POST', `/api/v1/admin/withdrawals/${ids[1]}/reject`, await adm(), { reason: 'no' }));
    expect(reject.failures).toBe(1);
    expect(reject.result.statusCode, reject.result.body).toBe(200);
    expect(reject.result.json()).toMatchObject({ id: ids[1], status: 'rejected', reason: 'no' });
    // Approve reads the withdrawal before deciding, the send reads it once claimed: the third read is the answer's.
    const approver = await adm();
    const approve = await failingOnce('selectFrom', () => req('POST', `/api/v1/admin/withdrawals/${ids[2]}/approve`, approver, {}), 2);
    expect(approve.failures).toBe(1);
    expect(approve.result.statusCode, approve.result.body).toBe(200);
    expect(approve.result.json().id).toBe(ids[2]);
    expect(['approved', 'sent']).toContain(approve.result.json().status);
    // Each decision took effect: two holds released, the approved one sent.
    expect(await bal(s)).toEqual({ available: '8000', held: '0' });
    const listed = (await req('GET', '/api/v1/account/withdrawals', s)).json();
    const byId = new Map((listed.withdrawals as { id: string; status: string }[]).map((w) => [w.id, w.status]));
    expect(ids.map((id) => byId.get(id))).toEqual(['cancelled', 'rejected', 'sent']);
  });

  it.skipIf(!available)('the audit record of a request states the amount held in its canonical form, as the withdrawal shows it, not as the client spelt it', async () => {
    const s = await trader('100');
    const w = (await withdraw(s, { amount: '10.500000' })).json();
    expect(w.amount).toBe('10.5');
    await (server.services.audit as unknown as { settle?: () => Promise<void> }).settle?.();
    const records = (await server.services.audit.list({ type: 'trading.withdrawal.requested', accountId: s.account.id }, { limit: 10 })).records;
    expect(records).toHaveLength(1);
    expect(records[0]!.details).toMatchObject({ withdrawalId: w.id, amount: '10.5' });
  });

  it.skipIf(!available)('developers may not withdraw; the ledger verifies and the external account mirrors what was sent', async () => {
    const dev = await sessionFor(server, { role: 'developer' });
    expect((await withdraw(dev, { amount: '1' })).json().code).toBe('forbidden_role');
    const report = await server.services.trading.ledger.verify();
    expect(report).toMatchObject({ ok: true });
    const sent = await server.services.store.db.selectFrom('withdrawals').select(['amount']).where('asset', '=', 'USDC').where('status', '=', 'sent').execute();
    const total = sent.reduce((sum, w) => sum + BigInt(w.amount), 0n);
    const external = (await server.services.trading.ledger.balances(SYSTEM_OWNERS.external)).find((b) => b.asset === 'USDC');
    // Money that left is credited to the outside world (deposits would debit it).
    expect(external?.available).toBe(total);
  });
});
