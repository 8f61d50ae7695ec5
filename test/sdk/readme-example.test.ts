/**
 * The README's "Use from code" examples, as written there: they compile (strict, against the SDK's
 * declarations) and do what they say against a real server. A person signs in with a wallet and
 * creates a key; a program reads that key from the environment, reads its account, and turns a
 * refusal into a MoondraftError with its code, status and request id.
 *
 * Also: each example of packages/client/README.md compiles on its own, as a reader copies one.
 *
 * The only change made to the README's text: the person's `baseUrl` names the test server's port
 * instead of 8080.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MoondraftClient } from '@moondraft/client';
import { startRealServer, type RealServer } from './support.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README_URL = "'http://127.0.0.1:8080'";

/** The ```ts blocks of the README's "Use from code" section, in order. */
function readmeExamples(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use from code'), readme.indexOf('\n## ', readme.indexOf('## Use from code') + 1));
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe("the README's Use from code examples", () => {
  const [person, program] = readmeExamples();
  let dir: string;
  let server: RealServer;
  const saved = { ...process.env };

  beforeAll(async () => {
    // Beside the code, so that '@moondraft/client' and 'viem/accounts' resolve as they do for a user.
    dir = mkdtempSync(path.join(ROOT, 'test/sdk/.readme-'));
    server = await startRealServer();
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    for (const name of ['WALLET_KEY', 'MOONDRAFT_URL', 'MOONDRAFT_API_KEY', 'MOONDRAFT_API_SECRET']) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it('are two TypeScript blocks, the first pointing at the default server', () => {
    expect(person).toBeDefined();
    expect(program).toBeDefined();
    expect(person).toContain(README_URL);
  });

  it('compile under the project settings (strict)', () => {
    const files = [path.join(dir, 'person.ts'), path.join(dir, 'program.ts')];
    writeFileSync(files[0]!, person!);
    writeFileSync(files[1]!, program!);
    const parsed = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
    const options = { ...parsed!.options, noEmit: true, incremental: false, tsBuildInfoFile: undefined };
    const diagnostics = ts.getPreEmitDiagnostics(ts.createProgram(files, options));
    expect(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
  });

  it("the SDK README's examples each compile on their own (strict), as a reader copies one", () => {
    const sdkReadme = readFileSync(path.join(ROOT, 'packages/client/README.md'), 'utf8');
    const blocks = [...sdkReadme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    const files = blocks.map((block, i) => {
      const file = path.join(dir, `sdk-readme-${i}.ts`);
      writeFileSync(file, block);
      return file;
    });
    const parsed = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
    const options = { ...parsed!.options, noEmit: true, incremental: false, tsBuildInfoFile: undefined };
    const diagnostics = ts.getPreEmitDiagnostics(ts.createProgram(files, options));
    expect(diagnostics.map((d) => `${path.basename(d.file?.fileName ?? '')}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)).toEqual([]);
  });

  it('work against a real server: sign in, create a key, read the account with it from the environment', async () => {
    const wallet = generatePrivateKey();
    process.env.WALLET_KEY = wallet;
    // The person's block, with `key` handed back to the test.
    const personFile = path.join(dir, 'person-run.ts');
    writeFileSync(personFile, `${person!.replace(README_URL, `'${server.url}'`)}\nexport { key };\n`);
    const { key } = (await import(pathToFileURL(personFile).href)) as { key: { apiKey: string; apiSecret: string; scopes: string[] } };
    expect(key.apiKey).toMatch(/^md_test_/);
    expect(key.apiSecret).toEqual(expect.any(String));
    expect(key.scopes).toEqual(['account:read']);

    process.env.MOONDRAFT_URL = server.url;
    process.env.MOONDRAFT_API_KEY = key.apiKey;
    process.env.MOONDRAFT_API_SECRET = key.apiSecret;
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    const programFile = path.join(dir, 'program-run.ts');
    writeFileSync(programFile, program!);
    await import(pathToFileURL(programFile).href);
    expect(error).not.toHaveBeenCalled();
    // Accounts name Ethereum wallets in lowercase.
    expect(log).toHaveBeenCalledWith(privateKeyToAccount(wallet).address.toLowerCase(), 'trader');
  });

  it("report a refusal as the comment says: code, status and request id (a key without the program's scope)", async () => {
    const owner = new MoondraftClient({ baseUrl: server.url, env: false });
    await owner.signIn(privateKeyToAccount(generatePrivateKey()));
    const key = await owner.keys.create({ label: 'market only', scopes: ['market:read'] });
    process.env.MOONDRAFT_URL = server.url;
    process.env.MOONDRAFT_API_KEY = key.apiKey;
    process.env.MOONDRAFT_API_SECRET = key.apiSecret!;
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    const programFile = path.join(dir, 'program-refused.ts');
    writeFileSync(programFile, program!);
    await import(pathToFileURL(programFile).href);
    expect(log).not.toHaveBeenCalled();
    expect(error).toHaveBeenCalledWith('insufficient_scope', 403, expect.stringMatching(/^req_[0-9a-f]{32}$/));
  });
});
