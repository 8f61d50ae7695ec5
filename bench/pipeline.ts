/**
 * The security pipeline as a whole: the same GET /api/v1/account through Moondraft's full pipeline
 * (a real server process: IP block list, authentication, permission matrix, rate limiter, headers,
 * metrics, access log and the audit trail's access event), beside
 *   - a bare Fastify route (bench/servers/bare-fastify.ts): no security at all, the ceiling;
 *   - an Express + jsonwebtoken + express-rate-limit stack doing comparable checks
 *     (bench/servers/express-stack.ts).
 * Two scenarios, the same load for all three servers (autocannon from this process):
 *   session: `Authorization: Bearer <access token>` from a real wallet sign-in;
 *   signed:  an HMAC-signed API-key request, with a fresh timestamp and signature for every request
 *            (replay protection refuses a copy, so every request must be unique).
 * Target (issue 9): the full pipeline keeps ≥ 60% of the bare route's requests/s and beats Express.
 *
 * `npm run bench -- pipeline`, or `node --import tsx bench/pipeline.ts`.
 *
 * All servers run for the whole benchmark. A round measures each of them in turn, back to back (the
 * order alternates between rounds), and a ratio is the median of the rounds' ratios: the speed of a
 * shared virtual machine drifts by half and more over minutes, and this way the drift slows the two
 * figures of a ratio alike instead of landing on whichever server happened to run then.
 *
 * Settings: BENCH_PIPELINE_CONNECTIONS (50), BENCH_PIPELINE_DURATION_S (3), BENCH_PIPELINE_ROUNDS (5),
 * BENCH_PIPELINE_PROFILE=<dir> (runs every server under `node --cpu-prof`, profiles written there),
 * BENCH_PIPELINE_SERVERS (moondraft,bare,express: a subset only prints its rounds, no table),
 * BENCH_PIPELINE_SCENARIOS (session,signed),
 * BENCH_PIPELINE_ENV ("NAME=value,…": extra environment for the Moondraft server, to try a setting),
 * BENCH_BARE_SPIN_US (busy work added to each request of the bare route: a calibration experiment).
 */
import { freePort } from '../test/support/process.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon, { type AutocannonRequest, type AutocannonResult } from 'autocannon';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { loadConfig } from '../src/config/index.js';
import { unwrap } from '../src/errors/registry.js';
import { createServices } from '../src/services.js';
import { cpuMicros } from './cpu.js';
import type { BenchRow } from './types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONNECTIONS = Number(process.env.BENCH_PIPELINE_CONNECTIONS ?? 50);
const DURATION_S = Number(process.env.BENCH_PIPELINE_DURATION_S ?? 3);
const ROUNDS = Number(process.env.BENCH_PIPELINE_ROUNDS ?? 5);
const WARMUP_S = 1;
const PATH = '/api/v1/account';
/**
 * API keys the signed load spreads over. Replay protection makes every signed request unique, and
 * one identical GET per key per millisecond is what timestamps allow: a single key at 10 000 requests/s
 * would have to sign timestamps running ahead of the clock. So the load is many bots (one key each
 * in turn), each well under 1 000 requests/s, as a busy deployment would see.
 */
const KEYS = 64;
/** Keys per account: an account holds at most 30 (KEY_LIMITS), so the bots belong to four accounts. */
const KEYS_PER_ACCOUNT = 16;

type ServerName = 'moondraft' | 'bare' | 'express';
type Scenario = 'session' | 'signed';

interface Fixture {
  dataDir: string;
  port: number;
  publicUrl: string;
  issuer: string;
  accountId: string;
  /** Every account the load runs as: the signed-in one, then the other owners of the keys. */
  accountIds: string[];
  accessToken: string;
  keys: Array<{ apiKey: string; apiSecret: string }>;
  publicKeyFile: string;
  keysFile: string;
}


/** Server environment shared by the preparation and the server process. */
function moondraftEnv(f: { dataDir: string; port: number; publicUrl: string }): Record<string, string> {
  return { MOONDRAFT_DATA_DIR: f.dataDir, HOST: '127.0.0.1', PORT: String(f.port), MOONDRAFT_PUBLIC_URL: f.publicUrl };
}

/**
 * A data dir holding one account signed in with a real wallet (its access token), API keys with
 * account:read, and partner limits far above the load (the limiter still decides every request).
 */
async function prepare(): Promise<Fixture> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'moondraft-bench-pipeline-'));
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const config = loadConfig({ ...moondraftEnv({ dataDir, port, publicUrl }), MOONDRAFT_LOG_LEVEL: 'warn' });
  const services = await createServices(config, { processMetrics: false });
  try {
    const wallet = privateKeyToAccount(generatePrivateKey());
    const client = { ip: '127.0.0.1', userAgent: 'bench', requestId: 'bench' };
    const challenge = unwrap(await services.signIn.challenge(wallet.address, 'ethereum'));
    const pair = unwrap(await services.signIn.login(challenge.message, await wallet.signMessage({ message: challenge.message }), client));
    const accountId = pair.account.id;
    const accountIds = [accountId];
    while (accountIds.length * KEYS_PER_ACCOUNT < KEYS) accountIds.push(unwrap(await services.accounts.findOrCreate(privateKeyToAccount(generatePrivateKey()).address)).id);
    const keys: Fixture['keys'] = [];
    for (const [n, owner] of accountIds.entries()) {
      await services.partnerLimits.set(owner, { market: 100_000, trading: 100_000, account: 100_000, tokens: 100_000 }, 'bench');
      for (let i = 0; i < KEYS_PER_ACCOUNT && keys.length < KEYS; i++) {
        const created = unwrap(await services.apiKeys.create({ accountId: owner, role: 'trader' }, { label: `bench ${n}.${i}`, scopes: ['account:read'] }));
        keys.push({ apiKey: created.apiKey, apiSecret: created.apiSecret! });
      }
    }
    const publicKeyFile = path.join(dataDir, 'bench-jwt-public.pem');
    writeFileSync(publicKeyFile, createPublicKey(services.signingKeys.active().privateKey).export({ type: 'spki', format: 'pem' }));
    const keysFile = path.join(dataDir, 'bench-keys.json');
    writeFileSync(keysFile, JSON.stringify(Object.fromEntries(keys.map((k) => [k.apiKey, k.apiSecret]))));
    return { dataDir, port, publicUrl, issuer: config.jwt.issuer, accountId, accountIds, accessToken: pair.accessToken, keys, publicKeyFile, keysFile };
  } finally {
    await services.close();
  }
}

interface Running {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts one server as a child process and waits until it answers HTTP. */
async function start(name: ServerName, f: Fixture): Promise<Running> {
  let args: string[];
  let env: Record<string, string>;
  let port: number;
  const profile = process.env.BENCH_PIPELINE_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.BENCH_PIPELINE_PROFILE)}`] : [];
  if (name === 'moondraft') {
    port = f.port;
    const built = path.join(ROOT, 'dist/main.js');
    args = existsSync(built) ? [...profile, built] : [...profile, '--import', 'tsx', path.join(ROOT, 'src/main.ts')];
    env = { ...serverEnvExtra(), ...moondraftEnv(f) };
  } else {
    port = await freePort();
    args = [...profile, '--import', 'tsx', path.join(ROOT, `bench/servers/${name === 'bare' ? 'bare-fastify' : 'express-stack'}.ts`)];
    env = { ...(name === 'bare' && process.env.BENCH_BARE_SPIN_US ? { BENCH_BARE_SPIN_US: process.env.BENCH_BARE_SPIN_US } : {}), BENCH_PORT: String(port), BENCH_PUBLIC_KEY_FILE: f.publicKeyFile, BENCH_KEYS_FILE: f.keysFile, BENCH_ISSUER: f.issuer, BENCH_AUDIENCE: 'moondraft-api' };
  }
  // Logs go where a deployment's would (here nowhere); stderr is kept for a failure report.
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} server exited (${child.exitCode}): ${stderr.slice(-2000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} server did not answer within 60 s: ${stderr.slice(-2000)}`);
    }
    try {
      await fetch(`${url}/api/v1/time`, { signal: AbortSignal.timeout(1000) });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    child,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * A new signed request for every call: round robin over the keys, each key's timestamps strictly
 * increasing. One generator serves the whole run (checks, warm-ups, measurements), so no two requests
 * of a key ever share a timestamp, even across autocannon runs.
 */
function signedRequests(f: Fixture): AutocannonRequest {
  const last = new Array<number>(f.keys.length).fill(0);
  let next = 0;
  return {
    method: 'GET',
    path: PATH,
    setupRequest(request) {
      const i = next++ % f.keys.length;
      const key = f.keys[i]!;
      const timestamp = Math.max(last[i]! + 1, Date.now());
      last[i] = timestamp;
      const signature = createHmac('sha256', key.apiSecret).update(`${timestamp}GET${PATH}`).digest('hex');
      request.headers = { 'x-api-key': key.apiKey, 'x-api-timestamp': String(timestamp), 'x-api-signature': signature };
      return request;
    },
  };
}


function load(url: string, scenario: Scenario, f: Fixture, signed: AutocannonRequest, durationS: number): Promise<AutocannonResult> {
  const options = { url, connections: CONNECTIONS, duration: durationS, timeout: 10 };
  if (scenario === 'session') return autocannon({ ...options, requests: [{ method: 'GET', path: PATH, headers: { authorization: `Bearer ${f.accessToken}` } }] });
  return autocannon({ ...options, requests: [signed] });
}

/** One request of the scenario by hand: it must be a 200, or the figures would measure refusals. */
/**
 * The audit trail must hold one access record per request Moondraft answered (between the requests
 * autocannon saw completed and those it sent), and no dropped-events record: a server that kept up
 * by shedding its audit trail would not be measuring the full pipeline.
 */
async function checkAuditTrail(f: Fixture, completed: number, sent: number): Promise<string> {
  const config = loadConfig({ ...moondraftEnv(f), MOONDRAFT_LOG_LEVEL: 'warn' });
  const services = await createServices(config, { processMetrics: false });
  try {
    let recorded = 0;
    for (const accountId of f.accountIds) {
      for await (const view of services.audit.export({ type: 'access.request', accountId })) if (view.readable) recorded += 1;
    }
    let dropped = 0;
    for await (const view of services.audit.export({ type: 'audit.events_dropped' })) dropped += Number(view.details?.dropped ?? 1);
    if (dropped > 0 || recorded < completed || recorded > sent) {
      throw new Error(`audit trail incomplete: ${recorded} access events for ${completed}–${sent} requests, ${dropped} dropped`);
    }
    const verified = await services.audit.verify();
    if (!verified.ok) throw new Error(`audit chain does not verify: ${JSON.stringify(verified.firstBroken)}`);
    return `${recorded} access events for ${completed} answered requests, none dropped, chain verified`;
  } finally {
    await services.close();
  }
}

async function check(name: ServerName, url: string, scenario: Scenario, f: Fixture, signed: AutocannonRequest): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    let headers: Record<string, string>;
    if (scenario === 'session') headers = { authorization: `Bearer ${f.accessToken}` };
    else {
      headers = signed.setupRequest!({ method: 'GET', path: PATH }, {}).headers!;
    }
    const res = await fetch(`${url}${PATH}`, { headers });
    if (res.status === 200) return;
    const body = await res.text();
    // A request signed in the embedded server's first second is refused (it cannot know whether
    // the process before it accepted that request): a client signs again, as the SDK does.
    if (attempt < 3 && body.includes('"timestamp_out_of_window"')) {
      await new Promise((resolve) => setTimeout(resolve, 1100));
      continue;
    }
    throw new Error(`${name} answered ${res.status} to the ${scenario} GET: ${body}`);
  }
}

interface Measure {
  rps: number;
  p50: number;
  p99: number;
  /** Server CPU time per request (µs), when the platform tells. */
  cpuPerRequest: number | undefined;
  /** The server's CPU time over the round's wall time (1 = one core busy throughout), when told. */
  serverBusy: number | undefined;
  /** CPU time of this process (the load generator) per request, µs. */
  loadCpuPerRequest: number;
}

function measureOf(name: ServerName, scenario: Scenario, r: AutocannonResult, cpuUsedMicros: number | undefined, loadCpuMicros: number): Measure {
  const total = r.requests.total;
  if (r.non2xx > 0 || r.errors > 0) {
    throw new Error(`${name}/${scenario}: ${r.non2xx} non-2xx answers and ${r.errors} errors out of ${total} (${JSON.stringify(r.statusCodeStats)}): the figures would not measure the GET`);
  }
  return {
    rps: total / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    cpuPerRequest: cpuUsedMicros === undefined ? undefined : cpuUsedMicros / total,
    serverBusy: cpuUsedMicros === undefined ? undefined : cpuUsedMicros / (r.duration * 1e6),
    loadCpuPerRequest: loadCpuMicros / total,
  };
}

/**
 * Below this share of a core, a server was not what limited its round: the load generator (this
 * process, on the same machine) was, and the server's figure is below what it could answer.
 */
const SERVER_BOUND = 0.9;

/** The load generator's CPU time so far (user + system, µs). */
function loadCpu(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Extra environment for the Moondraft server: BENCH_PIPELINE_ENV="NAME=value,NAME=value" (to try a setting). */
function serverEnvExtra(): Record<string, string> {
  const spec = process.env.BENCH_PIPELINE_ENV ?? '';
  return Object.fromEntries(
    spec
      .split(',')
      .filter((p) => p.includes('='))
      .map((p) => [p.slice(0, p.indexOf('=')).trim(), p.slice(p.indexOf('=') + 1)]),
  );
}

/**
 * The middle value; of an even count, the lower of the two middle ones (for a ratio of Moondraft
 * to a baseline, the less favourable to Moondraft).
 */
function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
}

export async function run(): Promise<BenchRow[]> {
  const servers = (process.env.BENCH_PIPELINE_SERVERS?.split(',') ?? ['moondraft', 'bare', 'express']) as ServerName[];
  if (servers.some((s) => !['moondraft', 'bare', 'express'].includes(s))) throw new Error(`BENCH_PIPELINE_SERVERS: ${servers.join(',')}: expected moondraft, bare and/or express`);
  const scenarios = (process.env.BENCH_PIPELINE_SCENARIOS?.split(',') ?? ['session', 'signed']) as Scenario[];
  process.stderr.write(`pipeline: preparing a data dir (sign-in, ${KEYS} API keys over ${Math.ceil(KEYS / KEYS_PER_ACCOUNT)} accounts, partner limits)…\n`);
  const fixture = await prepare();
  const signed = signedRequests(fixture);
  /** Per scenario, per round: each server's measure, taken back to back. */
  const rounds = new Map<Scenario, Array<Map<ServerName, Measure>>>();
  // Requests Moondraft answered (autocannon's completed count) and was sent, for the audit-trail check.
  const moondraftRequests = { completed: 0, sent: 0 };
  const count = (name: ServerName, r: AutocannonResult) => {
    if (name !== 'moondraft') return;
    moondraftRequests.completed += r.requests.total;
    moondraftRequests.sent += r.requests.sent ?? r.requests.total;
  };
  let auditNote = '';
  try {
    // Every server runs for the whole benchmark, idle while another is measured, so the rounds can
    // alternate between them: a machine whose speed drifts over minutes (a shared virtual machine)
    // then slows the figures that are compared with each other alike.
    const running = new Map<ServerName, Running>();
    try {
      for (const name of servers) running.set(name, await start(name, fixture));
      for (const scenario of scenarios) {
        for (const [name, server] of running) {
          await check(name, server.url, scenario, fixture, signed);
          if (name === 'moondraft') {
            moondraftRequests.completed += 1;
            moondraftRequests.sent += 1;
          }
          count(name, await load(server.url, scenario, fixture, signed, WARMUP_S));
        }
        const list: Array<Map<ServerName, Measure>> = [];
        for (let round = 1; round <= ROUNDS; round++) {
          const measures = new Map<ServerName, Measure>();
          // Alternate the order, so no server always runs right after another's load.
          for (const name of round % 2 === 1 ? servers : [...servers].reverse()) {
            const server = running.get(name)!;
            const cpuBefore = cpuMicros(server.child.pid);
            const loadBefore = loadCpu();
            const result = await load(server.url, scenario, fixture, signed, DURATION_S);
            const loadAfter = loadCpu();
            const cpuAfter = cpuMicros(server.child.pid);
            count(name, result);
            const m = measureOf(name, scenario, result, cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore, loadAfter - loadBefore);
            const cpu = m.cpuPerRequest === undefined ? '' : `  server CPU ${Math.round(m.cpuPerRequest)} µs/req (${Math.round(100 * m.serverBusy!)}% of a core)`;
            process.stderr.write(`  round ${round} ${name.padEnd(9)} ${scenario.padEnd(7)} ${Math.round(m.rps)} req/s  p50 ${m.p50} ms  p99 ${m.p99} ms${cpu}  load generator ${Math.round(m.loadCpuPerRequest)} µs/req\n`);
            measures.set(name, m);
          }
          list.push(measures);
        }
        rounds.set(scenario, list);
      }
    } finally {
      for (const server of running.values()) await server.stop();
    }
    // The servers have stopped gracefully: Moondraft flushed its audit buffer on the way out.
    if (servers.includes('moondraft')) auditNote = await checkAuditTrail(fixture, moondraftRequests.completed, moondraftRequests.sent);
    process.stderr.write(`  audit trail: ${auditNote}\n`);
  } finally {
    rmSync(fixture.dataDir, { recursive: true, force: true });
  }

  const rows: BenchRow[] = [];
  if (servers.length < 3) return rows; // a partial run (BENCH_PIPELINE_SERVERS) only prints its rounds
  const label: Record<Scenario, string> = { session: 'session JWT GET /account', signed: 'HMAC-signed API-key GET /account' };
  const ratios = (list: Array<Map<ServerName, Measure>>, baseline: ServerName) => list.map((m) => m.get('moondraft')!.rps / m.get(baseline)!.rps);
  /** The round whose Moondraft/baseline ratio is the median: its two figures are the ones shown. */
  const medianRound = (list: Array<Map<ServerName, Measure>>, baseline: ServerName) => {
    const r = ratios(list, baseline);
    return list[r.indexOf(median(r))]!;
  };
  const spread = (list: Array<Map<ServerName, Measure>>, baseline: ServerName) =>
    `median of ${list.length} paired rounds (${ratios(list, baseline)
      .map((x) => `${x.toFixed(2)}×`)
      .join(', ')})`;
  for (const scenario of scenarios) {
    const list = rounds.get(scenario)!;
    const ofBare = medianRound(list, 'bare');
    const ofExpress = medianRound(list, 'express');
    const md = ofBare.get('moondraft')!;
    const bare = ofBare.get('bare')!;
    const ex = ofExpress.get('express')!;
    const cpu = (m: Measure) => (m.cpuPerRequest === undefined ? 'n/a' : `${Math.round(m.cpuPerRequest)} µs`);
    // A bare route that the load generator held back makes the ratio look better than it is: say so.
    const bareBusy = median(list.flatMap((m) => (m.get('bare')!.serverBusy === undefined ? [] : [m.get('bare')!.serverBusy!])));
    const heldBack =
      Number.isFinite(bareBusy) && bareBusy < SERVER_BOUND
        ? `; the bare route's server was only ${Math.round(100 * bareBusy)}% busy (median): the load generator (${Math.round(bare.loadCpuPerRequest)} µs of CPU per request, on the same cores) limited it, so this ratio flatters Moondraft`
        : '';
    rows.push(
      {
        name: `${label[scenario]}, full pipeline`,
        value: Math.round(md.rps),
        unit: 'req/s',
        baseline: { name: 'bare Fastify route', value: Math.round(bare.rps) },
        note: `target ≥ 0.60×: ${md.rps / bare.rps >= 0.6 ? 'met' : 'NOT met'}; ${spread(list, 'bare')}${heldBack}${scenario === scenarios[0] ? `; audit trail checked: ${auditNote}` : ''}`,
      },
      {
        name: `${label[scenario]}, full pipeline`,
        value: Math.round(ofExpress.get('moondraft')!.rps),
        unit: 'req/s',
        baseline: { name: 'Express + jsonwebtoken + express-rate-limit', value: Math.round(ex.rps) },
        note: `target > 1×: ${ofExpress.get('moondraft')!.rps > ex.rps ? 'met' : 'NOT met'}; ${spread(list, 'express')}; Express p50 ${ex.p50} ms, p99 ${ex.p99} ms, server CPU ${cpu(ex)}/req`,
      },
      { name: `${label[scenario]}, full pipeline p50`, value: md.p50, unit: 'ms', better: 'lower', baseline: { name: 'bare Fastify route', value: bare.p50 } },
      { name: `${label[scenario]}, full pipeline p99`, value: md.p99, unit: 'ms', better: 'lower', baseline: { name: 'bare Fastify route', value: bare.p99 } },
    );
    // CPU figures exist on Linux only (/proc), for every round or none.
    const cpus = (name: ServerName) => list.map((m) => m.get(name)!.cpuPerRequest).filter((x): x is number => x !== undefined);
    const cpuOf = (name: ServerName) => median(cpus(name));
    if (cpus('moondraft').length === list.length && cpus('bare').length === list.length) {
      rows.push({
        name: `${label[scenario]}, server CPU per request (median of the rounds)`,
        value: Math.round(cpuOf('moondraft')),
        unit: 'µs',
        better: 'lower',
        baseline: { name: 'bare Fastify route', value: Math.round(cpuOf('bare')) },
      });
    }
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const rows = await run();
  for (const r of rows) {
    const base = r.baseline ? `  vs ${r.baseline.name} ${r.baseline.value} ${r.unit} (${(r.value / r.baseline.value).toFixed(2)}×)` : '';
    console.log(`${r.name}: ${r.value} ${r.unit}${base}${r.note ? `  ${r.note}` : ''}`);
  }
}
