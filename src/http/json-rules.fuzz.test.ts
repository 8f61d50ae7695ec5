import { describe, expect, it } from 'vitest';
import { jsonRuleBroken } from './json-rules.js';
import { prng } from '../../test/support/prng.js';

/**
 * jsonRuleBroken against an independent reference: a recursive-descent JSON parser that decodes
 * strings itself (never JSON.parse) and reports the first fault in text order (per string: its NUL
 * or lone surrogate first, then a repeated member name), over seeded random JSON texts.
 */

type Rand = ReturnType<typeof prng>;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const hex4 = (c: number, upper: boolean) => {
  const h = c.toString(16).padStart(4, '0');
  return upper ? h.toUpperCase() : h;
};

/** One code unit (or pair) of a string, in some JSON spelling. */
function encodeUnit(r: Rand, c: number): string {
  const mode = r();
  if (c === 0x22) return pick(r, ['\\"', `\\u${hex4(c, false)}`]);
  if (c === 0x5c) return pick(r, ['\\\\', `\\u${hex4(c, r() < 0.5)}`]);
  if (c === 0x2f) return pick(r, ['/', '\\/', '\\u002f']);
  if (c < 0x20 || (c >= 0xd800 && c <= 0xdfff)) {
    const short: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
    return short[c] !== undefined && mode < 0.5 ? short[c]! : `\\u${hex4(c, r() < 0.5)}`;
  }
  return mode < 0.2 ? `\\u${hex4(c, r() < 0.5)}` : String.fromCharCode(c);
}

/** A random decoded string (code units), rarely with NUL or a lone surrogate. */
function randomUnits(r: Rand, faults: boolean): number[] {
  const n = Math.floor(r() * 4);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.45) out.push(pick(r, [0x61, 0x62, 0x63])); // a b c: names repeat often
    else if (k < 0.55) out.push(pick(r, [0x22, 0x5c, 0x2f, 0x20, 0x3a, 0x2c, 0x7b, 0x7d, 0x5b, 0x5d]));
    else if (k < 0.62) out.push(pick(r, [0x0a, 0x09, 0x01, 0x1f, 0x7f]));
    else if (k < 0.7) out.push(pick(r, [0xe9, 0x263a, 0xfeff, 0xffff]));
    else if (k < 0.8) {
      // a surrogate pair (an emoji)
      out.push(0xd83d, 0xde00 + Math.floor(r() * 0x40));
    } else if (k < 0.85 && faults) out.push(0);
    else if (k < 0.9 && faults) out.push(pick(r, [0xd800, 0xdbff, 0xdc00, 0xdfff]));
    else out.push(0x61);
  }
  return out;
}

function encodeString(r: Rand, units: number[]): string {
  let s = '"';
  for (let i = 0; i < units.length; i++) {
    const c = units[i]!;
    const next = units[i + 1];
    // A valid pair may be written raw (the text is a JS string, as decoded from UTF-8).
    if (c >= 0xd800 && c <= 0xdbff && next !== undefined && next >= 0xdc00 && next <= 0xdfff && r() < 0.5) {
      s += String.fromCharCode(c, next);
      i++;
      continue;
    }
    s += encodeUnit(r, c);
  }
  return `${s}"`;
}

const ws = (r: Rand) => (r() < 0.6 ? '' : pick(r, [' ', '\n', '\t', '\r', '  ', ' \n ']));

function randomValue(r: Rand, depth: number, faults: boolean): string {
  const k = r();
  if (depth > 0 && k < 0.3) {
    const n = Math.floor(r() * 5);
    const members: string[] = [];
    for (let i = 0; i < n; i++) members.push(`${ws(r)}${encodeString(r, randomUnits(r, faults))}${ws(r)}:${ws(r)}${randomValue(r, depth - 1, faults)}${ws(r)}`);
    return `{${n === 0 ? ws(r) : members.join(',')}}`;
  }
  if (depth > 0 && k < 0.5) {
    const n = Math.floor(r() * 4);
    const items: string[] = [];
    for (let i = 0; i < n; i++) items.push(`${ws(r)}${randomValue(r, depth - 1, faults)}${ws(r)}`);
    return `[${n === 0 ? ws(r) : items.join(',')}]`;
  }
  if (k < 0.8) return encodeString(r, randomUnits(r, faults));
  return pick(r, ['0', '-1', '1.5e3', 'true', 'false', 'null', '12345678901234567890']);
}

/** The reference: parses `text` and reports the first fault in text order. */
function reference(text: string): string | undefined {
  let i = 0;
  let fault: string | undefined;
  const skipWs = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const str = (): number[] => {
    if (text[i] !== '"') throw new Error(`string expected at ${i}`);
    i++;
    const units: number[] = [];
    for (;;) {
      const c = text.charCodeAt(i++);
      if (c === 0x22) return units;
      if (c !== 0x5c) {
        if (c < 0x20 || Number.isNaN(c)) throw new Error('bad char');
        units.push(c);
        continue;
      }
      const e = text[i++]!;
      const simple: Record<string, number> = { '"': 0x22, '\\': 0x5c, '/': 0x2f, b: 8, f: 12, n: 10, r: 13, t: 9 };
      if (e in simple) units.push(simple[e]!);
      else if (e === 'u') {
        const h = text.slice(i, i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(h)) throw new Error('bad \\u');
        units.push(parseInt(h, 16));
        i += 4;
      } else throw new Error('bad escape');
    }
  };
  const unitFault = (units: number[]): string | undefined => {
    for (let j = 0; j < units.length; j++) {
      const c = units[j]!;
      if (c === 0) return 'holds U+0000';
      if (c >= 0xd800 && c <= 0xdbff) {
        const n = units[j + 1];
        if (n !== undefined && n >= 0xdc00 && n <= 0xdfff) {
          j++;
          continue;
        }
        return 'holds a lone surrogate';
      }
      if (c >= 0xdc00 && c <= 0xdfff) return 'holds a lone surrogate';
    }
    return undefined;
  };
  const printable = (s: string) => {
    let out = '';
    for (const ch of s) out += ch.length === 1 && ch.charCodeAt(0) >= 0x20 && ch.charCodeAt(0) <= 0x7e && ch !== '"' && ch !== '\\' ? ch : ch.length === 1 ? '?' : '??';
    return out.length > 64 ? `${out.slice(0, 64)}…` : out;
  };
  const note = (why: string) => {
    fault ??= why;
  };
  const value = (): unknown => {
    skipWs();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, unknown> = {};
      const seen = new Set<string>();
      skipWs();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        skipWs();
        const units = str();
        const name = String.fromCharCode(...units);
        const f = unitFault(units);
        if (f) note(`A member name of the body ${f}`);
        else if (seen.has(name)) note(`The body names "${printable(name)}" twice in one object`);
        seen.add(name);
        skipWs();
        if (text[i++] !== ':') throw new Error('colon expected');
        const v = value();
        Object.defineProperty(obj, name, { value: v, enumerable: true, configurable: true, writable: true });
        skipWs();
        const d = text[i++];
        if (d === '}') return obj;
        if (d !== ',') throw new Error('comma expected');
      }
    }
    if (c === '[') {
      i++;
      const arr: unknown[] = [];
      skipWs();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        skipWs();
        const d = text[i++];
        if (d === ']') return arr;
        if (d !== ',') throw new Error('comma expected');
      }
    }
    if (c === '"') {
      const units = str();
      const f = unitFault(units);
      if (f) note(`A string of the body ${f}`);
      return String.fromCharCode(...units);
    }
    const m = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i));
    if (!m) throw new Error(`value expected at ${i}`);
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  const v = value();
  skipWs();
  if (i !== text.length) throw new Error('trailing text');
  // The reference reads what JSON.parse reads (last of a repeated name wins in both).
  expect(v).toEqual(JSON.parse(text));
  return fault;
}

describe('jsonRuleBroken against a reference parser (seeded random texts)', () => {
  it('agrees on every text, valid or faulty', () => {
    const r = prng(0x5eed13);
    const counts = { ok: 0, dup: 0, nul: 0, surrogate: 0 };
    for (let n = 0; n < 6000; n++) {
      const faults = r() < 0.3;
      const text = `${ws(r)}${randomValue(r, 1 + Math.floor(r() * 4), faults)}${ws(r)}`;
      JSON.parse(text); // every generated text is valid JSON
      const expected = reference(text);
      expect({ text, why: jsonRuleBroken(text) }).toEqual({ text, why: expected });
      if (expected === undefined) counts.ok++;
      else if (expected.includes('twice')) counts.dup++;
      else if (expected.includes('U+0000')) counts.nul++;
      else counts.surrogate++;
    }
    // The generator reaches every outcome often.
    for (const c of Object.values(counts)) expect(c).toBeGreaterThan(100);
  });
});
