import { afterEach, describe, expect, it } from 'vitest';
import { generateEd25519KeyPair, MoondraftClient, type RetryEvent } from '../src/index.js';
import { sequenceFor, ServerClock } from '../src/time/server-clock.js';
import { ed25519Valid, hmacValid, sendJson, sendProblem, startWireServer, timestampInWindow, type WireServer } from './support/wire-server.js';

const SECRET = 'mds_clock_secret';
const SERVER_NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const TEN_MINUTES = 10 * 60_000;

/** A clock tests move by hand. */
class ManualClock {
  constructor(public t: number) {}
  now(): number {
    return this.t;
  }
}

let server: WireServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/**
 * A server whose clock reads SERVER_NOW. Signed requests are checked like the contract says: the
 * timestamp within 5 s behind / 1 s ahead, the signature, and no signature accepted twice.
 */
async function strictServer(): Promise<WireServer> {
  const accepted = new Set<string>();
  server = await startWireServer((req, res) => {
    const serverTime = SERVER_NOW;
    if (req.target === '/api/v1/time') return sendJson(res, 200, { serverTime }, { serverTime });
    if (!timestampInWindow(req, serverTime)) return sendProblem(res, 401, 'timestamp_out_of_window', 'The timestamp is outside the receive window', { serverTime });
    if (!hmacValid(SECRET, req)) return sendProblem(res, 401, 'invalid_signature', 'bad signature', { serverTime });
    const signature = String(req.headers['x-api-signature']);
    if (accepted.has(signature)) return sendProblem(res, 401, 'replayed_request', 'already accepted', { serverTime });
    accepted.add(signature);
    sendJson(res, 200, { id: 'acc_1' }, { serverTime });
  });
  return server;
}

const apiRequests = (s: WireServer) => s.requests.filter((r) => r.target !== '/api/v1/time');

describe('clock-skew correction', () => {
  it('measures the server clock before the first signed request and signs in server time', async () => {
    const s = await strictServer();
    const local = new ManualClock(SERVER_NOW - TEN_MINUTES); // the local clock is 10 minutes behind
    const client = new MoondraftClient({ baseUrl: s.url, env: false, apiKey: 'md_test_c', apiSecret: SECRET, clock: local });
    expect(client.clockOffsetMs).toBeUndefined();

    await expect(client.account.get()).resolves.toEqual({ id: 'acc_1' });
    expect(s.requests.map((r) => r.target)).toEqual(['/api/v1/time', '/api/v1/account']);
    // The local clock did not move during the round trip, so the estimate is exact.
    expect(client.clockOffsetMs).toBe(TEN_MINUTES);
    expect(client.clockEstimate).toMatchObject({ offsetMs: TEN_MINUTES, uncertaintyMs: 0 });
    expect(client.serverNow()).toBe(SERVER_NOW);
    expect(s.requests[1]!.headers['x-api-timestamp']).toBe(String(SERVER_NOW));
  });

  it('recovers from timestamp_out_of_window by re-signing once with the server time it was told', async () => {
    const s = await strictServer();
    const local = new ManualClock(SERVER_NOW + 90_000); // 90 s ahead
    const retries: RetryEvent[] = [];
    const client = new MoondraftClient({
      baseUrl: s.url,
      env: false,
      apiKey: 'md_test_c',
      apiSecret: SECRET,
      clock: local,
      autoSyncTime: false,
      hooks: { onRetry: (e) => retries.push(e) },
    });
    // A POST: safe to send again because the refusal came before anything ran.
    await expect(client.request('POST', '/api/v1/account/withdrawals', { body: { asset: 'USDC', amount: '1', address: 'x' } })).resolves.toEqual({ id: 'acc_1' });
    const [refused, accepted] = apiRequests(s);
    expect(apiRequests(s)).toHaveLength(2);
    expect(Number(refused!.headers['x-api-timestamp'])).toBe(SERVER_NOW + 90_000);
    expect(Number(accepted!.headers['x-api-timestamp'])).toBe(SERVER_NOW);
    expect(retries.map((r) => r.reason)).toEqual(['clock_skew']);
    expect(client.clockOffsetMs).toBe(-90_000);
  });

  it('re-signs only once: a server that keeps refusing gets the error', async () => {
    server = await startWireServer((req, res) => sendProblem(res, 401, 'timestamp_out_of_window', 'never', { serverTime: SERVER_NOW }));
    const client = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: 'k', apiSecret: SECRET, clock: new ManualClock(SERVER_NOW), autoSyncTime: false });
    await expect(client.account.get()).rejects.toMatchObject({ code: 'timestamp_out_of_window', attempts: 2 });
    expect(server.requests).toHaveLength(2);
  });

  it('re-signs once with a later timestamp when the server says the signature was already used (a timestamp reused after the estimate moved back)', async () => {
    let signed = 0;
    server = await startWireServer((req, res) => {
      if (req.target === '/api/v1/time') return sendJson(res, 200, { serverTime: SERVER_NOW }, { serverTime: SERVER_NOW });
      signed += 1;
      if (signed === 1) return sendProblem(res, 401, 'replayed_request', 'already accepted', { serverTime: SERVER_NOW });
      sendJson(res, 201, { id: 'wdr_1' }, { serverTime: SERVER_NOW });
    });
    const retries: RetryEvent[] = [];
    const client = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: 'md_test_replay', apiSecret: SECRET, clock: new ManualClock(SERVER_NOW), hooks: { onRetry: (e) => retries.push(e) } });
    // An order: its clientOrderId makes a repeat harmless.
    await expect(client.trading.placeOrder({ market: 'MOON-USDC', side: 'buy', type: 'market', quantity: '1' })).resolves.toEqual({ id: 'wdr_1' });
    const [refused, accepted] = apiRequests(server);
    expect(apiRequests(server)).toHaveLength(2);
    expect(Number(accepted!.headers['x-api-timestamp'])).toBeGreaterThan(Number(refused!.headers['x-api-timestamp']));
    expect(accepted!.body.equals(refused!.body)).toBe(true);
    expect(retries.map((r) => r.reason)).toEqual(['timestamp_reused']);
    // A withdrawal too: its clientWithdrawalId makes a repeat harmless.
    signed = 0;
    await expect(client.withdrawals.create({ asset: 'USDC', amount: '1', address: '0x52908400098527886E0F7030069857D2E4169EE7' })).resolves.toEqual({ id: 'wdr_1' });
    expect(apiRequests(server)).toHaveLength(4);
    // Not a token launch: the refusal may mean this very request arrived twice, and signing it again
    // would make a second one.
    signed = 0;
    await expect(client.tokens.create({ name: 'Moon', symbol: 'MOON', decimals: 6, supply: '1000' })).rejects.toMatchObject({ code: 'replayed_request', attempts: 1 });
    expect(apiRequests(server)).toHaveLength(5);
  });

  it('re-signs after a replay refusal only once', async () => {
    server = await startWireServer((req, res) => {
      if (req.target === '/api/v1/time') return sendJson(res, 200, { serverTime: SERVER_NOW }, { serverTime: SERVER_NOW });
      sendProblem(res, 401, 'replayed_request', 'already accepted', { serverTime: SERVER_NOW });
    });
    const client = new MoondraftClient({ baseUrl: server.url, env: false, apiKey: 'md_test_replay2', apiSecret: SECRET, clock: new ManualClock(SERVER_NOW) });
    await expect(client.account.get()).rejects.toMatchObject({ code: 'replayed_request', attempts: 2 });
    expect(apiRequests(server)).toHaveLength(2);
  });

  it('gives identical requests signed in the same millisecond distinct timestamps, so neither is a replay', async () => {
    const s = await strictServer();
    const client = new MoondraftClient({ baseUrl: s.url, env: false, apiKey: 'md_test_c', apiSecret: SECRET, clock: new ManualClock(SERVER_NOW) });
    const results = await Promise.all([client.account.get(), client.account.get(), client.account.get()]);
    expect(results).toEqual([{ id: 'acc_1' }, { id: 'acc_1' }, { id: 'acc_1' }]);
    const stamps = apiRequests(s).map((r) => r.headers['x-api-timestamp']);
    expect(new Set(stamps).size).toBe(3);
    // Concurrent first calls share one time sync.
    expect(s.requests.filter((r) => r.target === '/api/v1/time')).toHaveLength(1);
  });

  it('two clients of one key never sign the same request with the same timestamp', async () => {
    const s = await strictServer();
    const local = new ManualClock(SERVER_NOW); // frozen: every request is signed in the same millisecond
    const options = { baseUrl: s.url, env: false, apiKey: 'md_test_two_clients', apiSecret: SECRET, clock: local, retry: { maxRetries: 0 } } as const;
    const a = new MoondraftClient(options);
    const b = new MoondraftClient(options);
    const results = await Promise.all([a, b, a, b, a, b].map((c) => c.account.get()));
    expect(results).toEqual(Array(6).fill({ id: 'acc_1' })); // the server refuses a repeated signature
    const stamps = apiRequests(s).map((r) => Number(r.headers['x-api-timestamp']));
    expect(new Set(stamps).size).toBe(6);
  });

  it('syncTime() measures on demand and returns the offset', async () => {
    const s = await strictServer();
    const client = new MoondraftClient({ baseUrl: s.url, env: false, clock: new ManualClock(SERVER_NOW + 1234) });
    await expect(client.syncTime(3)).resolves.toBe(-1234);
    expect(s.requests.filter((r) => r.target === '/api/v1/time')).toHaveLength(3);
  });
});

describe('ServerClock estimate', () => {
  it('takes the offset from the sample with the shortest round trip, at its midpoint', () => {
    const local = new ManualClock(1_000_000);
    const clock = new ServerClock(local);
    clock.record({ serverTime: 1_000_400, sentAt: 999_000, receivedAt: 1_000_000 }); // rtt 1000 → offset 900
    clock.record({ serverTime: 1_000_150, sentAt: 999_900, receivedAt: 1_000_000 }); // rtt 100 → offset 200
    clock.record({ serverTime: 1_009_000, sentAt: 997_000, receivedAt: 1_000_000 }); // rtt 3000 (a slow handler)
    expect(clock.estimate()).toEqual({ offsetMs: 200, uncertaintyMs: 50, sampledAt: 1_000_000 });
  });

  it('waits out the first second of a replay memory that just began instead of being refused twice', async () => {
    // The server's replay memory began at SERVER_NOW (a restart, or its shared state lost): it takes
    // only timestamps from 1 s after that, and refuses others with timestamp_out_of_window.
    const local = new ManualClock(SERVER_NOW);
    const since = SERVER_NOW;
    server = await startWireServer((req, res) => {
      const serverTime = local.t;
      if (req.target === '/api/v1/time') return sendJson(res, 200, { serverTime }, { serverTime });
      if (!timestampInWindow(req, serverTime) || Number(req.headers['x-api-timestamp']) - 1000 < since) {
        return sendProblem(res, 401, 'timestamp_out_of_window', 'signed before the replay memory began', { serverTime, extra: { serverTime } });
      }
      if (!hmacValid(SECRET, req)) return sendProblem(res, 401, 'invalid_signature', 'bad signature', { serverTime });
      sendJson(res, 200, { id: 'acc_1' }, { serverTime });
    });
    const retries: RetryEvent[] = [];
    const client = new MoondraftClient({
      baseUrl: server.url,
      env: false,
      apiKey: 'md_test_replay_memory',
      apiSecret: SECRET,
      clock: local,
      sleep: async (ms) => {
        local.t += ms;
      },
      hooks: { onRetry: (e) => retries.push(e) },
    });
    await expect(client.account.get()).resolves.toEqual({ id: 'acc_1' });
    expect(retries.map((r) => r.reason)).toEqual(['clock_skew']);
    expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(1000);
  });

  it('leans timestamps back by the uncertainty (never ahead of the server) and keeps them increasing', () => {
    const local = new ManualClock(1_000_000);
    const clock = new ServerClock(local);
    clock.record({ serverTime: 1_005_000, sentAt: 999_000, receivedAt: 1_001_000 }); // offset 5000 ± 1000
    local.t = 1_001_000;
    expect(clock.nextTimestamp()).toBe(1_005_000); // server now 1_006_000, minus 1000 of uncertainty
    expect(clock.nextTimestamp()).toBe(1_005_001);
    expect(clock.nextTimestamp()).toBe(1_005_002);
  });

  it('shares one strictly increasing sequence between the clocks of one key', () => {
    const local = new ManualClock(1_000_000);
    const first = new ServerClock(local, sequenceFor('md_test_sequence'));
    const second = new ServerClock(local, sequenceFor('md_test_sequence'));
    const otherKey = new ServerClock(local, sequenceFor('md_test_sequence_other'));
    const alone = new ServerClock(local);
    expect([first.nextTimestamp(), second.nextTimestamp(), first.nextTimestamp(), second.nextTimestamp()]).toEqual([1_000_000, 1_000_001, 1_000_002, 1_000_003]);
    expect(otherKey.nextTimestamp()).toBe(1_000_000);
    expect(alone.nextTimestamp()).toBe(1_000_000);
  });

  it('shares one sequence between keys that share an ed25519 key pair (the server accepts its signature once, whichever key it names)', async () => {
    const pair = generateEd25519KeyPair();
    const accepted = new Set<string>();
    server = await startWireServer((req, res) => {
      if (req.target === '/api/v1/time') return sendJson(res, 200, { serverTime: SERVER_NOW }, { serverTime: SERVER_NOW });
      if (!ed25519Valid(pair.publicKey, req)) return sendProblem(res, 401, 'invalid_signature', 'bad signature', { serverTime: SERVER_NOW });
      // Replay memory scoped to the signer (the public key), as the server keeps it.
      const signature = String(req.headers['x-api-signature']);
      if (accepted.has(signature)) return sendProblem(res, 401, 'replayed_request', 'already accepted', { serverTime: SERVER_NOW });
      accepted.add(signature);
      sendJson(res, 200, { asset: 'USDC', amount: '10' }, { serverTime: SERVER_NOW });
    });
    const local = new ManualClock(SERVER_NOW);
    const options = { baseUrl: server.url, env: false as const, privateKey: pair.privateKey, clock: local };
    const first = new MoondraftClient({ ...options, apiKey: 'md_test_shared_pair_1' });
    const second = new MoondraftClient({ ...options, apiKey: 'md_test_shared_pair_2' });
    // The same request by both keys in the same millisecond: not idempotent, so a replay refusal would be final.
    await expect(first.sandbox.faucet({ asset: 'USDC', amount: '10' })).resolves.toMatchObject({ asset: 'USDC' });
    await expect(second.sandbox.faucet({ asset: 'USDC', amount: '10' })).resolves.toMatchObject({ asset: 'USDC' });
    const [a, b] = apiRequests(server);
    expect(b!.headers['x-api-timestamp']).not.toBe(a!.headers['x-api-timestamp']);
  });

  it('follows a corrected estimate back in time instead of staying ahead', () => {
    const local = new ManualClock(1_000_000);
    const clock = new ServerClock(local);
    clock.record({ serverTime: 2_000_000, sentAt: 1_000_000, receivedAt: 1_000_000 });
    expect(clock.nextTimestamp()).toBe(2_000_000);
    clock.reset();
    clock.record({ serverTime: 1_000_000, sentAt: 1_000_000, receivedAt: 1_000_000 });
    expect(clock.nextTimestamp()).toBe(1_000_000);
  });

  it('ignores a sample received "before" it was sent (the local clock stepped back): it is no zero-round-trip measurement', () => {
    const local = new ManualClock(1_000_000);
    const clock = new ServerClock(local);
    clock.record({ serverTime: 1_000_050, sentAt: 999_900, receivedAt: 1_000_000 }); // rtt 100 → offset 100
    // NTP stepped the local clock back 2 s during this request: its times say nothing about the offset.
    clock.record({ serverTime: 1_000_100, sentAt: 1_000_000, receivedAt: 998_050 });
    expect(clock.estimate()).toEqual({ offsetMs: 100, uncertaintyMs: 50, sampledAt: 1_000_000 });
  });

  it('forgets samples older than ten minutes and ignores malformed server times', () => {
    const local = new ManualClock(1_000_000);
    const clock = new ServerClock(local);
    clock.record({ serverTime: Number.NaN, sentAt: 1, receivedAt: 1 });
    expect(clock.synced).toBe(false);
    clock.record({ serverTime: 1_000_500, sentAt: 1_000_000, receivedAt: 1_000_000 });
    expect(clock.estimate()?.offsetMs).toBe(500);
    local.t += 10 * 60_000 + 1;
    expect(clock.synced).toBe(false);
    expect(clock.now()).toBe(local.t);
  });
});
