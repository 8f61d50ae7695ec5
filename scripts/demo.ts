/**
 * `npm run demo`: an end-to-end walk through Moondraft with the SDK, step by step.
 *
 * Starts a sandbox server on a free port (or uses MOONDRAFT_URL), signs two wallets in, creates
 * scoped keys, funds them from the faucet, launches a token and trades it between the two, then
 * shows the security controls refusing what they must: a 429 and its recovery, an unsigned
 * request, a replayed request, and a key fenced by IP. Exits non-zero if any step misbehaves.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { hmacSigner, MoondraftClient, MoondraftError, signRequest, type ResponseEvent, type RetryEvent } from '@moondraft/client';
import { createMoondraft } from '../src/app.js';
import { loadConfig } from '../src/config/index.js';
import { listen, type Listening } from '../src/http/listen.js';

const bold = (s: string) => `\x1b[1m${s}\x1b[0m`;
const green = (s: string) => `\x1b[32m${s}\x1b[0m`;
const red = (s: string) => `\x1b[31m${s}\x1b[0m`;
const dim = (s: string) => `\x1b[2m${s}\x1b[0m`;

let stepNo = 0;
async function step<T>(title: string, fn: () => Promise<T>): Promise<T> {
  stepNo += 1;
  process.stdout.write(`\n${bold(`${stepNo}. ${title}`)}\n`);
  try {
    const value = await fn();
    process.stdout.write(`   ${green('✓ ok')}\n`);
    return value;
  } catch (err) {
    process.stdout.write(`   ${red('✗ misbehaved:')} ${err instanceof Error ? err.message : String(err)}\n`);
    throw err;
  }
}
const say = (line: string) => process.stdout.write(`   ${line}\n`);

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** Runs `fn` expecting a refusal with `code`; returns the error. */
async function refused(code: string, fn: () => Promise<unknown>): Promise<MoondraftError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof MoondraftError && err.code === code) return err;
    throw new Error(`expected ${code}, got ${err instanceof MoondraftError ? `${err.code} (${err.status})` : String(err)}`);
  }
  throw new Error(`expected ${code}, but the request succeeded`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function startServer(): Promise<{ url: string; stop(): Promise<void> }> {
  if (process.env.MOONDRAFT_URL) return { url: process.env.MOONDRAFT_URL.replace(/\/+$/, ''), stop: async () => {} };
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-demo-'));
  const url = `http://127.0.0.1:${port}`;
  const config = loadConfig({ PORT: String(port), HOST: '127.0.0.1', MOONDRAFT_DATA_DIR: dataDir, MOONDRAFT_PUBLIC_URL: url, MOONDRAFT_LOG_LEVEL: 'warn' });
  const server: Listening = await listen(await createMoondraft(config));
  return {
    url,
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  const server = await step('Start a sandbox server', async () => {
    const s = await startServer();
    say(`serving ${s.url} ${dim(process.env.MOONDRAFT_URL ? '(MOONDRAFT_URL)' : '(SQLite in a temporary data dir, in-process state)')}`);
    return s;
  });
  const baseUrl = server.url;
  const clients: MoondraftClient[] = [];
  const client = (options: ConstructorParameters<typeof MoondraftClient>[0] = {}) => {
    const c = new MoondraftClient({ baseUrl, env: false, ...options });
    clients.push(c);
    return c;
  };

  try {
    const [alice, bob] = await step('Create two wallets and sign in with EIP-4361 (Sign-In with Ethereum)', async () => {
      const people = [];
      for (const name of ['alice', 'bob']) {
        const wallet = privateKeyToAccount(generatePrivateKey());
        const session = client();
        await session.signIn(wallet);
        const me = await session.account.get();
        say(`${name}: ${wallet.address} → account ${me.id} (${me.role})`);
        people.push({ name, wallet, session });
      }
      return people as [(typeof people)[0], (typeof people)[0]];
    });

    const scopes = ['market:read', 'account:read', 'orders:read', 'orders:write', 'portfolio:read', 'tokens:write'] as const;
    const [aliceKey, bobKey] = await step('Create scoped API keys with the sessions (secrets shown once)', async () => {
      const keys = [];
      for (const p of [alice, bob]) {
        const k = await p.session.keys.create({ label: `${p.name} bot`, scopes: [...scopes] });
        check(k.apiSecret, 'an hmac key comes with its secret, once');
        say(`${p.name}: ${k.apiKey.slice(0, 14)}… scopes ${k.scopes.join(', ')}`);
        keys.push(k);
      }
      return keys as [(typeof keys)[0], (typeof keys)[0]];
    });
    const aliceBot = client({ apiKey: aliceKey.apiKey, apiSecret: aliceKey.apiSecret! });
    const bobBot = client({ apiKey: bobKey.apiKey, apiSecret: bobKey.apiSecret! });

    await step('Fund both from the sandbox faucet (signed requests)', async () => {
      for (const [name, bot] of [['alice', aliceBot], ['bob', bobBot]] as const) {
        await bot.sandbox.faucet({ asset: 'USDC', amount: '1000' });
        const balances = await bot.account.balances();
        say(`${name}: ${balances.map((b) => `${b.total} ${b.asset}`).join(', ')}`);
      }
    });

    const symbol = `DEMO${Math.floor(Math.random() * 900 + 100)}`;
    await step(`Alice launches the ${symbol} token (listed as ${symbol}-USDC)`, async () => {
      const { token, market } = await aliceBot.tokens.create({ name: 'Demo Moon', symbol, decimals: 6, supply: '1000000' });
      check(token.symbol === symbol && market.symbol === `${symbol}-USDC`, `expected ${symbol} listed as ${symbol}-USDC, got ${token.symbol} on ${market.symbol}`);
      say(`created ${token.symbol} (${token.supply} tokens, ${token.decimals} decimals) on ${market.symbol}: tick ${market.tickSize}, lot ${market.lotSize}`);
    });

    await step(`Alice sells ${symbol}, Bob buys it`, async () => {
      const market = `${symbol}-USDC`;
      const ask = await aliceBot.trading.placeOrder({ market, side: 'sell', type: 'limit', price: '0.5', quantity: '100' });
      say(`alice ask ${ask.id}: ${ask.status}`);
      const bid = await bobBot.trading.placeOrder({ market, side: 'buy', type: 'limit', price: '0.5', quantity: '40' });
      say(`bob bid ${bid.id}: ${bid.status}`);
      check(bid.status === 'filled', `bob's order should fill against alice's ask, got ${bid.status}`);
      const { fills } = await bobBot.trading.fills({ market });
      check(fills.length > 0, 'bob should have a fill');
      for (const f of fills) say(`bob's fill ${f.id}: ${f.side} ${f.quantity} @ ${f.price} (${f.liquidity}, fee ${f.fee} ${f.feeAsset})`);
      const book = await bobBot.market.orderBook(market, { depth: 5 });
      const levels = (side: typeof book.asks) => side.map((l) => `${l.quantity} @ ${l.price}`).join(', ') || '(empty)';
      say(`book: asks ${levels(book.asks)}; bids ${levels(book.bids)}`);
    });

    await step('Hammer one key past its limit: 429 rate_limited, then recovery after Retry-After', async () => {
      // What the SDK saw, from its hooks: every response (with its attempt number) and every retry.
      const responses: ResponseEvent[] = [];
      const retries: RetryEvent[] = [];
      const patient = client({
        apiKey: bobKey.apiKey,
        apiSecret: bobKey.apiSecret!,
        // Only the account calls: the SDK's own clock sync (GET /api/v1/time) is left out.
        hooks: { onResponse: (e) => e.path === '/api/v1/account' && responses.push(e), onRetry: (e) => e.path === '/api/v1/account' && retries.push(e) },
      });
      // A burst well past the account limit (25/s): some requests must be refused with 429, and the SDK
      // must wait out Retry-After and retry them until every one succeeds. A machine too slow to exceed
      // 25 requests a second gets two more bursts; never seeing a 429 fails the step.
      const burst = 40;
      let sent = 0;
      let rounds = 0;
      for (let round = 1; round <= 3 && !retries.some((r) => r.reason === 'rate_limited'); round++) {
        rounds = round;
        const results = await Promise.allSettled(Array.from({ length: burst }, () => patient.account.get()));
        sent += burst;
        const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        check(failed.length === 0, `${failed.length} of ${burst} requests failed despite retries: ${[...new Set(failed.map((f) => (f.reason instanceof MoondraftError ? f.reason.code : String(f.reason))))].join(', ')}`);
      }
      const limitedRetries = retries.filter((r) => r.reason === 'rate_limited');
      const refusals = responses.filter((r) => r.status === 429);
      check(refusals.length > 0, `no 429 in ${rounds} burst(s) of ${burst} account requests at once (limit 25/s): the recovery was not exercised`);
      check(limitedRetries.length === refusals.length, `the server answered 429 ${refusals.length} times but the SDK retried ${limitedRetries.length} times`);
      check(limitedRetries.every((r) => r.error.code === 'rate_limited' && r.error.status === 429), 'a rate_limited retry did not come from a 429 rate_limited refusal');
      const recovered = responses.filter((r) => r.status === 200 && r.attempt > 1);
      check(recovered.length > 0, 'no retried request succeeded');
      check(responses.filter((r) => r.status === 200).length === sent, `expected ${sent} successful answers, got ${responses.filter((r) => r.status === 200).length}`);

      const first = limitedRetries[0]!;
      const waits = limitedRetries.map((r) => r.delayMs);
      say(`${sent} requests at once${rounds > 1 ? ` (in ${rounds} bursts)` : ''}: the server answered 429 ${first.error.code} ${refusals.length} times (Retry-After ${Math.ceil((first.error.retryAfterMs ?? 0) / 1000)} s)`);
      say(`the SDK waited ${Math.min(...waits)}–${Math.max(...waits)} ms (Retry-After + jitter) and retried each one: ${recovered.length} succeeded on a retry, all ${sent} succeeded`);
    });

    await step('An unsigned trading request is refused (signature_required)', async () => {
      const res = await fetch(`${baseUrl}/api/v1/trading/orders`, {
        method: 'POST',
        headers: { 'x-api-key': aliceKey.apiKey, 'content-type': 'application/json' },
        body: JSON.stringify({ market: `${symbol}-USDC`, side: 'sell', type: 'limit', price: '1', quantity: '1' }),
      });
      const problem = (await res.json()) as { code: string; detail: string };
      check(res.status === 401 && problem.code === 'signature_required', `expected 401 signature_required, got ${res.status} ${problem.code}`);
      say(`${res.status} ${problem.code}: ${problem.detail}`);
    });

    await step('A replayed signed request is refused (replayed_request)', async () => {
      const timestamp = String((await aliceBot.system.time()).serverTime);
      const pathWithQuery = '/api/v1/account/balances';
      const signature = signRequest(hmacSigner(aliceKey.apiSecret!), { timestamp, method: 'GET', path: pathWithQuery, body: '' });
      const headers = { 'x-api-key': aliceKey.apiKey, 'x-api-timestamp': timestamp, 'x-api-signature': signature };
      const once = await fetch(baseUrl + pathWithQuery, { headers });
      check(once.status === 200, `the first copy should pass, got ${once.status}`);
      const again = await fetch(baseUrl + pathWithQuery, { headers });
      const problem = (await again.json()) as { code: string };
      check(again.status === 401 && problem.code === 'replayed_request', `expected 401 replayed_request, got ${again.status} ${problem.code}`);
      say(`first copy 200; the same bytes again → ${again.status} ${problem.code}`);
    });

    await step('A key fenced to another IP is refused (ip_not_allowed)', async () => {
      const fenced = await alice.session.keys.create({ label: 'office only', scopes: ['account:read'], ipWhitelist: ['203.0.113.7/32'] });
      const officeBot = client({ apiKey: fenced.apiKey, apiSecret: fenced.apiSecret! });
      const err = await refused('ip_not_allowed', () => officeBot.account.get());
      say(`${err.status} ${err.code}: ${err.detail}`);
    });

    process.stdout.write(`\n${green(bold('Demo complete: every step behaved.'))}\n`);
  } finally {
    for (const c of clients) c.close();
    await server.stop();
  }
}

main().catch(() => {
  process.stdout.write(`\n${red(bold('Demo failed.'))}\n`);
  process.exitCode = 1;
});
