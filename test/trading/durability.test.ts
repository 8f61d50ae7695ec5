import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createServices } from '../../src/services.js';
import { readMinor } from '../../src/trading/money.js';
import { startChildServer, type ChildServer } from '../support/child-server.js';
import { fund, listMoon, MOON, USDC } from '../support/trading.js';

/**
 * Durability: the real server, in its own process on a SQLite file, takes concurrent orders over
 * HTTP and is SIGKILLed in the middle of them. After a restart on the same data dir every order it
 * acknowledged is there, the rebuilt book equals the open orders, and the ledger verifies.
 */
const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-kill-'));
// One public URL for the token minting here and the child on its random port: it is the issuer.
const env = { MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_PUBLIC_URL: 'http://127.0.0.1:8080' };
const children: ChildServer[] = [];
afterAll(async () => {
  for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  rmSync(dataDir, { recursive: true, force: true });
});

async function prepare(traders: number): Promise<{ token: string; accountId: string }[]> {
  // Same data dir as the child: its keyset and master key sign tokens the child will accept.
  const services = await createServices(loadConfig({ ...env, MOONDRAFT_LOG_LEVEL: 'silent' }), { processMetrics: false });
  try {
    await listMoon(services.trading);
    const out = [];
    for (let i = 0; i < traders; i++) {
      const wallet = `0x${randomBytes(20).toString('hex')}`;
      const account = await services.accounts.findOrCreate(wallet);
      if (!account.ok) throw new Error(account.detail);
      await fund(services.trading, account.value.id, 'USDC', USDC(100_000));
      await fund(services.trading, account.value.id, 'MOON', MOON(100_000));
      // A partner limit: this test loads orders as fast as it can; rate limits are tested elsewhere.
      await services.partnerLimits.set(account.value.id, { trading: 100_000, account: 100_000 }, 'test');
      const { token } = await services.accessTokens.issue({ accountId: account.value.id, wallet: account.value.wallet, role: 'trader', sessionId: `ses_kill_${i}`, authTime: Math.floor(Date.now() / 1000) });
      out.push({ token, accountId: account.value.id });
    }
    return out;
  } finally {
    await services.close();
  }
}

describe('SIGKILL under concurrent order load', () => {
  it('loses no acknowledged order and leaves a ledger that verifies', async () => {
    // Six traders load the server; a seventh, who never trades under load, checks afterwards
    // (its market buy then cannot cancel own resting orders by self-trade prevention).
    const traders = await prepare(7);
    const first = await startChildServer(env);
    children.push(first);

    const acked = new Map<string, { clientOrderId: string; status: string; filled: string; token: string }>();
    let sent = 0;
    let stop = false;
    // After the kill each worker goes on until a request of its own fails: a kill that lands just
    // after a group commit answered every request in flight would otherwise leave none unanswered.
    let killed = false;
    const worker = async (w: number) => {
      const t = traders[w % 6]!;
      for (let i = 0; !stop; i++) {
        const side = (w + i) % 2 === 0 ? 'buy' : 'sell';
        const price = (1 + ((w * 7 + i * 3) % 9) / 100).toFixed(2);
        const clientOrderId = `w${w}-${i}`;
        sent++;
        try {
          const res = await fetch(`${first.url}/api/v1/trading/orders`, {
            method: 'POST',
            headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ market: 'MOON-USDC', side, type: 'limit', price, quantity: '1', clientOrderId }),
          });
          if (res.status === 201) {
            const body = (await res.json()) as { id: string; status: string; filledQuantity: string };
            acked.set(body.id, { clientOrderId, status: body.status, filled: body.filledQuantity, token: t.token });
          } else {
            throw new Error(`unexpected ${res.status}: ${await res.text()}`);
          }
        } catch (err) {
          if (stop || killed) return; // the server died under this request: it was never acknowledged
          throw err;
        }
      }
    };
    let failure: unknown;
    const workers = Array.from({ length: 16 }, (_, w) =>
      worker(w).catch((err) => {
        failure ??= err;
        stop = true;
      }),
    );
    while (acked.size < 300 && failure === undefined) await new Promise((r) => setTimeout(r, 20));
    if (failure !== undefined) throw failure;
    killed = true;
    first.child.kill('SIGKILL');
    const died = await first.exited;
    expect(died.signal).toBe('SIGKILL');
    await Promise.all(workers);
    if (failure !== undefined) throw failure;
    expect(sent).toBeGreaterThan(acked.size); // requests died with the server, unanswered

    const second = await startChildServer(env);
    children.push(second);
    try {
      // Every acknowledged order is there, at least as far along as when it was acknowledged.
      for (const [id, a] of acked) {
        const res = await fetch(`${second.url}/api/v1/trading/orders/${id}`, { headers: { authorization: `Bearer ${a.token}` } });
        expect(res.status, id).toBe(200);
        const o = (await res.json()) as { clientOrderId: string; filledQuantity: string };
        expect(o.clientOrderId).toBe(a.clientOrderId);
        expect(Number(o.filledQuantity)).toBeGreaterThanOrEqual(Number(a.filled));
      }
      // The restarted server rebuilt its book from the store: it serves the open orders exactly.
      const viewer = traders[6]!;
      const book = (await (await fetch(`${second.url}/api/v1/market/orderbook/MOON-USDC?depth=100`, { headers: { authorization: `Bearer ${viewer.token}` } })).json()) as {
        bids: { price: string; quantity: string }[];
        asks: { price: string; quantity: string }[];
      };
      if (book.bids[0] && book.asks[0]) expect(Number(book.bids[0].price)).toBeLessThan(Number(book.asks[0].price));
      // And it keeps trading on that book.
      const more = await fetch(`${second.url}/api/v1/trading/orders`, {
        method: 'POST',
        headers: { authorization: `Bearer ${viewer.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' }),
      });
      expect(more.status).toBe(201);
      second.child.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);

      const services = await createServices(loadConfig({ ...env, MOONDRAFT_LOG_LEVEL: 'silent' }), { processMetrics: false });
      try {
        const report = await services.trading.ledger.verify();
        expect(report.violation).toBeUndefined();
        expect(report.ok).toBe(true);
        const open = await services.store.db.selectFrom('orders').selectAll().where('status', 'in', ['open', 'partially_filled']).execute();
        const restingInStore = open.reduce((s, o) => s + readMinor(o.remaining), 0n);
        const restingInBook = [...book.bids, ...book.asks].reduce((s, l) => s + BigInt(Math.round(Number(l.quantity) * 1e6)), 0n);
        // The market buy after the restart took at most 1 MOON off the book.
        expect(restingInBook - restingInStore >= 0n && restingInBook - restingInStore <= MOON(1)).toBe(true);
        const held = await services.store.db.selectFrom('holds').select(['id']).where('status', '=', 'active').execute();
        expect(new Set(held.map((h) => h.id))).toEqual(new Set(open.map((o) => o.id)));
      } finally {
        await services.close();
      }
    } finally {
      if (second.child.exitCode === null && second.child.signalCode === null) second.child.kill('SIGKILL');
    }
  }, 180_000);
});
