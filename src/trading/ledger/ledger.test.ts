import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok } from '../../errors/registry.js';
import { ManualClock } from '../../lib/clock.js';
import type { Store } from '../../store/db.js';
import { openTestStore, storeBackends } from '../../../test/support/stores.js';
import { Ledger, SYSTEM_OWNERS } from './index.js';

const clock = new ManualClock();
const { issuance } = SYSTEM_OWNERS;

describe.each(await storeBackends())('ledger on %s', (backend) => {
  let store: Store;
  let ledger: Ledger;
  beforeAll(async () => {
    store = await openTestStore(backend);
    ledger = new Ledger(store, clock);
  });
  afterAll(() => store.close());

  const credit = (owner: string, asset: string, amount: bigint) =>
    ledger.run(async (l) => l.post('credit', null, [{ owner: issuance, asset, amount: -amount }, { owner, asset, amount }]));

  it('posts balanced entries and keeps balances per owner and asset', async () => {
    expect((await credit('acc_a', 'USDC', 1_000n)).ok).toBe(true);
    expect((await credit('acc_a', 'MOON', 5n)).ok).toBe(true);
    expect(await ledger.balances('acc_a')).toEqual([
      { asset: 'MOON', available: 5n, held: 0n },
      { asset: 'USDC', available: 1_000n, held: 0n },
    ]);
    expect((await ledger.verify()).ok).toBe(true);
  });

  it('throws on an unbalanced entry and writes nothing', async () => {
    await expect(ledger.run(async (l) => l.post('bad', null, [{ owner: 'acc_a', asset: 'USDC', amount: 1n }]))).rejects.toThrow(/unbalanced/);
    expect((await ledger.balances('acc_a')).find((b) => b.asset === 'USDC')?.available).toBe(1_000n);
  });

  it('refuses to take an account below zero with insufficient_funds, changing nothing', async () => {
    const r = await ledger.run(async (l) =>
      l.post('transfer', null, [
        { owner: 'acc_a', asset: 'USDC', amount: -1_001n },
        { owner: 'acc_b', asset: 'USDC', amount: 1_001n },
      ]),
    );
    expect(r).toMatchObject({ ok: false, code: 'insufficient_funds' });
    expect(await ledger.balances('acc_b')).toEqual([]);
    expect((await ledger.verify()).ok).toBe(true);
  });

  it('holds move available to held; releases move it back; verify ties held to holds', async () => {
    const held = await ledger.run(async (l) => l.openHold({ id: 'wdr_1', owner: 'acc_a', asset: 'USDC', amount: 300n, kind: 'withdrawal' }));
    expect(held.ok).toBe(true);
    expect((await ledger.balances('acc_a')).find((b) => b.asset === 'USDC')).toEqual({ asset: 'USDC', available: 700n, held: 300n });
    expect((await ledger.verify()).ok).toBe(true);

    const tooMuch = await ledger.run(async (l) => l.openHold({ id: 'wdr_2', owner: 'acc_a', asset: 'USDC', amount: 701n, kind: 'withdrawal' }));
    expect(tooMuch).toMatchObject({ ok: false, code: 'insufficient_funds' });

    // Pay out 100 of the hold to the outside world, release the rest.
    await ledger.run(async (l) => {
      await l.post('withdrawal.sent', 'wdr_1', [
        { owner: 'acc_a', asset: 'USDC', amount: -100n, hold: 'wdr_1' },
        { owner: SYSTEM_OWNERS.external, asset: 'USDC', amount: 100n },
      ]);
      expect(await l.releaseHold('wdr_1')).toBe(200n);
      return ok(undefined);
    });
    expect((await ledger.balances('acc_a')).find((b) => b.asset === 'USDC')).toEqual({ asset: 'USDC', available: 900n, held: 0n });
    const hold = await store.db.selectFrom('holds').selectAll().where('id', '=', 'wdr_1').executeTakeFirstOrThrow();
    expect(hold.status).toBe('closed');
    expect((await ledger.verify()).ok).toBe(true);
  });

  it('a refusal returned by the callback rolls back everything it posted', async () => {
    const r = await ledger.run(async (l) => {
      await l.post('credit', null, [{ owner: issuance, asset: 'USDC', amount: -5n }, { owner: 'acc_c', asset: 'USDC', amount: 5n }]);
      return l.openHold({ id: 'wdr_3', owner: 'acc_c', asset: 'USDC', amount: 6n, kind: 'withdrawal' });
    });
    expect(r.ok).toBe(false);
    expect(await ledger.balances('acc_c')).toEqual([]);
  });

  it('concurrent debits racing for one balance never overdraw', async () => {
    await credit('acc_race', 'USDC', 10n);
    const attempts = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        ledger.run(async (l) =>
          l.post('transfer', `r${i}`, [
            { owner: 'acc_race', asset: 'USDC', amount: -1n },
            { owner: `acc_sink${i % 3}`, asset: 'USDC', amount: 1n },
          ]),
        ),
      ),
    );
    expect(attempts.filter((a) => a.ok)).toHaveLength(10);
    expect(attempts.filter((a) => !a.ok).every((a) => !a.ok && a.code === 'insufficient_funds')).toBe(true);
    expect((await ledger.balances('acc_race'))[0]).toMatchObject({ available: 0n });
    expect((await ledger.verify()).ok).toBe(true);
  });

  describe('verify finds each kind of corruption', () => {
    const tamper = async (fn: () => Promise<unknown>, undo: () => Promise<unknown>, expected: RegExp) => {
      await fn();
      const r = await ledger.verify();
      await undo();
      expect(r.ok).toBe(false);
      expect(r.violation).toMatch(expected);
      expect((await ledger.verify()).ok).toBe(true);
    };

    it('an unbalanced entry', async () => {
      await tamper(
        () => store.db.insertInto('ledger_postings').values({ entry_id: 'jrn_zzz', line: 0, owner: 'acc_x', asset: 'USDC', bucket: 'available', amount: '7' }).execute(),
        () => store.db.deleteFrom('ledger_postings').where('entry_id', '=', 'jrn_zzz').execute(),
        /entry jrn_zzz is unbalanced/,
      );
    });

    it('a balance that disagrees with its postings', async () => {
      await tamper(
        () => store.db.updateTable('balances').set({ available: '901' }).where('owner', '=', 'acc_a').where('asset', '=', 'USDC').execute(),
        () => store.db.updateTable('balances').set({ available: '900' }).where('owner', '=', 'acc_a').where('asset', '=', 'USDC').execute(),
        /balance of acc_a in USDC is available 901/,
      );
    });

    it('a negative account balance, even when postings agree', async () => {
      await tamper(
        async () => {
          await store.db.insertInto('ledger_entries').values({ id: 'jrn_neg', kind: 'x', ref_id: null, created_at: 0 }).execute();
          await store.db.insertInto('ledger_postings').values([
            { entry_id: 'jrn_neg', line: 0, owner: 'acc_neg', asset: 'USDC', bucket: 'available', amount: '-3' },
            { entry_id: 'jrn_neg', line: 1, owner: 'acc_a', asset: 'USDC', bucket: 'available', amount: '3' },
          ]).execute();
          await store.db.insertInto('balances').values({ owner: 'acc_neg', asset: 'USDC', available: '-3', held: '0', updated_at: 0, version: 1 }).execute();
          await store.db.updateTable('balances').set({ available: '903' }).where('owner', '=', 'acc_a').where('asset', '=', 'USDC').execute();
        },
        async () => {
          await store.db.deleteFrom('ledger_postings').where('entry_id', '=', 'jrn_neg').execute();
          await store.db.deleteFrom('ledger_entries').where('id', '=', 'jrn_neg').execute();
          await store.db.deleteFrom('balances').where('owner', '=', 'acc_neg').execute();
          await store.db.updateTable('balances').set({ available: '900' }).where('owner', '=', 'acc_a').where('asset', '=', 'USDC').execute();
        },
        /acc_neg in USDC is negative/,
      );
    });

    it('a held balance without a matching hold', async () => {
      await tamper(
        () => store.db.updateTable('holds').set({ status: 'active', amount: '4' }).where('id', '=', 'wdr_1').execute(),
        () => store.db.updateTable('holds').set({ status: 'closed', amount: '0' }).where('id', '=', 'wdr_1').execute(),
        /active holds of acc_a in USDC add up to 4|held USDC of acc_a is 0 but its active holds add up to 4/,
      );
    });

    // Only SQLite stores amounts as text; PostgreSQL's numeric(39,0) cannot hold such values, so
    // the case exists on SQLite alone.
    if (backend === 'sqlite') it('an amount that is not a whole number of minor units, reported, not thrown', async () => {
      for (const [bad, expected] of [
        ['1.5', /entry jrn_bad line 0 has an amount that is not a whole number of minor units: "1.5"/],
        ['0x10', /entry jrn_bad line 0 has an amount that is not a whole number of minor units: "0x10"/],
        ['', /entry jrn_bad line 0 has an amount that is not a whole number of minor units: ""/],
      ] as const) {
        await tamper(
          () => store.db.insertInto('ledger_postings').values({ entry_id: 'jrn_bad', line: 0, owner: 'acc_x', asset: 'USDC', bucket: 'available', amount: bad }).execute(),
          () => store.db.deleteFrom('ledger_postings').where('entry_id', '=', 'jrn_bad').execute(),
          expected,
        );
      }
      await tamper(
        () => store.db.updateTable('balances').set({ held: 'x' }).where('owner', '=', 'acc_a').where('asset', '=', 'USDC').execute(),
        () => store.db.updateTable('balances').set({ held: '0' }).where('owner', '=', 'acc_a').where('asset', '=', 'USDC').execute(),
        /balance of acc_a in USDC has a held amount that is not a whole number of minor units: "x"/,
      );
      await tamper(
        () => store.db.updateTable('holds').set({ amount: '4.0' }).where('id', '=', 'wdr_1').execute(),
        () => store.db.updateTable('holds').set({ amount: '0' }).where('id', '=', 'wdr_1').execute(),
        /hold wdr_1 has an amount that is not a whole number of minor units: "4.0"/,
      );
    });

    it('a closed hold that still holds something', async () => {
      await tamper(
        () => store.db.updateTable('holds').set({ amount: '4' }).where('id', '=', 'wdr_1').execute(),
        () => store.db.updateTable('holds').set({ amount: '0' }).where('id', '=', 'wdr_1').execute(),
        /hold wdr_1 is closed but still holds 4/,
      );
    });
  });
});
