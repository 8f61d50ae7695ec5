/**
 * docs/API.md against the routes the server registers. Outside clients build requests from the
 * document, so each concrete claim that can be read mechanically is held here:
 *   - every `METHOD /path` it names is a route the server serves with that method;
 *   - every query parameter it names on such a route (`?a=&b=`) is one the route declares;
 *   - every operation of /openapi.json is named in it (in full, or as the `/rest` or `…/rest` the
 *     document uses after naming the route family);
 *   - the page sizes it gives (`limit` and `depth` defaults and maxima) are the schema's.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const docs = readFileSync(path.join(repoRoot, 'docs/API.md'), 'utf8');

interface Parameter {
  in: string;
  name: string;
  schema: { default?: number; maximum?: number; minimum?: number };
}
interface OpenApi {
  paths: Record<string, Record<string, { parameters?: Parameter[] }>>;
}

/** `GET /api/v1/x/:id?a=&b=` and `GET|PATCH /api/v1/y` as written in the document. */
function documentedRoutes(): { method: string; path: string; query: string[]; text: string }[] {
  const out: { method: string; path: string; query: string[]; text: string }[] = [];
  const methods = 'GET|POST|PUT|PATCH|DELETE';
  const re = new RegExp(`\`((?:${methods})(?:\\|(?:${methods}))*) (/[^\`\\s]*)\``, 'g');
  for (const m of docs.matchAll(re)) {
    const [target, query = ''] = m[2]!.split('?') as [string, string | undefined];
    // `GET /api/v1/account/withdrawals[/:id]`: the list and the one.
    const paths = target.endsWith('[/:id]') ? [target.slice(0, -'[/:id]'.length), target.replace('[/:id]', '/:id')] : [target];
    const names = [...query.matchAll(/([A-Za-z]+)=/g)].map((q) => q[1]!);
    for (const method of m[1]!.split('|')) for (const p of paths) out.push({ method, path: p, query: names, text: m[0] });
  }
  return out;
}

const toOpenApi = (p: string) => p.replace(/:([A-Za-z]+)/g, '{$1}');
const toDocs = (p: string) => p.replace(/\{([A-Za-z]+)\}/g, ':$1');

let server: TestServer;
let openapi: OpenApi;

beforeAll(async () => {
  server = await startTestServer();
  openapi = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json() as OpenApi;
});
afterAll(() => server?.close());

describe('docs/API.md names the routes the server serves', () => {
  it('finds the routes it names (a change to the pattern above would otherwise check nothing)', () => {
    expect(documentedRoutes().length).toBeGreaterThan(60);
  });

  it('every `METHOD /path` it names is served with that method', () => {
    const missing = documentedRoutes()
      .filter((r) => !server.app.hasRoute({ method: r.method as 'GET', url: r.path }))
      .map((r) => `${r.method} ${r.path} (${r.text})`);
    expect(missing).toEqual([]);
  });

  it('every query parameter it names is one the route declares', () => {
    const undeclared: string[] = [];
    for (const r of documentedRoutes()) {
      if (r.query.length === 0) continue;
      const op = openapi.paths[toOpenApi(r.path)]?.[r.method.toLowerCase()];
      const declared = new Set((op?.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name));
      for (const q of r.query) if (!declared.has(q)) undeclared.push(`${r.method} ${r.path} ?${q}=`);
    }
    expect(undeclared).toEqual([]);
  });

  it('every operation of /openapi.json is named in it', () => {
    const named = new Set(documentedRoutes().map((r) => `${r.method} ${r.path}`));
    const unnamed: string[] = [];
    for (const [p, ops] of Object.entries(openapi.paths)) {
      for (const method of Object.keys(ops)) {
        const route = toDocs(p);
        if (named.has(`${method.toUpperCase()} ${route}`)) continue;
        // Named after its family: "`GET /api/v1/market/markets`, `/tickers`", "`DELETE …/:id`", "`…/reject`".
        const segments = route.split('/');
        const tails = segments.slice(2).map((_, i) => `/${segments.slice(i + 2).join('/')}`);
        const short = tails.slice(1).some((tail) => [`\`${tail}`, `\`…${tail}`, `\`${method.toUpperCase()} …${tail}\``].some((form) => docs.includes(form)));
        if (!short) unnamed.push(`${method.toUpperCase()} ${route}`);
      }
    }
    expect(unnamed).toEqual([]);
  });
});

describe('docs/API.md gives the page sizes the schemas enforce', () => {
  const bullet = docs.split('\n- ').find((b) => b.startsWith('Page sizes'));

  /** "`A`, `B` … default to 100, at most 500" → each path with its default and maximum. */
  function documentedSizes(): { path: string; parameter: string; default: number; maximum: number }[] {
    if (!bullet) throw new Error('docs/API.md has no "Page sizes" bullet');
    const out: { path: string; parameter: string; default: number; maximum: number }[] = [];
    for (const clause of bullet.replace(/\s+/g, ' ').split(';')) {
      const sizes = /defaults? to (\d+)(?: levels a side)?, at most (\d+)/.exec(clause);
      if (!sizes) continue;
      const parameter = /`depth`/.test(clause) ? 'depth' : 'limit';
      for (const m of clause.matchAll(/`(\/api\/v1\/[^`]+)`/g)) out.push({ path: m[1]!, parameter, default: Number(sizes[1]), maximum: Number(sizes[2]) });
    }
    return out;
  }

  it('names every list route that pages, with the default and maximum its schema has', () => {
    const documented = documentedSizes();
    const schema: typeof documented = [];
    for (const [p, ops] of Object.entries(openapi.paths)) {
      const q = (ops.get?.parameters ?? []).find((x) => x.in === 'query' && (x.name === 'limit' || x.name === 'depth'));
      if (q) schema.push({ path: toDocs(p), parameter: q.name, default: q.schema.default!, maximum: q.schema.maximum! });
    }
    const byPath = (a: { path: string }, b: { path: string }) => a.path.localeCompare(b.path);
    expect(documented.sort(byPath)).toEqual(schema.sort(byPath));
  });

});
