/**
 * What a request body must be beyond valid JSON: I-JSON (RFC 7493), and no NUL characters.
 *
 * - Member names are unique in each object. JSON.parse keeps the last of a repeated name; a proxy,
 *   a web application firewall or an auditor reading the same signed bytes may keep the first and
 *   see another order than the one executed. A name repeated through escapes (`"a"` and `"\u0061"`)
 *   is the same name.
 * - Strings hold no lone surrogate (`"\ud800"`): it has no UTF-8 form, so what a store writes would
 *   not be what was signed.
 * - Strings and names hold no U+0000: PostgreSQL text cannot hold it, and no field of the API needs it.
 *
 * `text` must already have parsed as JSON (the scan relies on it). Returns why the body is refused,
 * or undefined. One pass over the text, no allocation for names without escapes beyond the set.
 */
export function jsonRuleBroken(text: string): string | undefined {
  // Each open container: a set of member names for an object, null for an array.
  const stack: (Set<string> | null)[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectName = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectName = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectName = false;
    } else if (c === 0x2c /* , */) {
      expectName = stack.length > 0 && stack[stack.length - 1] !== null;
    } else if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; ; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      const raw = text.slice(start, i + 1);
      const value = escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
      if (escaped) {
        const broken = stringRuleBroken(value);
        if (broken) return `${expectName ? 'A member name' : 'A string'} of the body ${broken}`;
      }
      if (expectName) {
        const names = stack[stack.length - 1]!;
        if (names.has(value)) return `The body names "${printable(value)}" twice in one object`;
        names.add(value);
        expectName = false;
      }
    }
  }
  return undefined;
}

/** A decoded string's fault: a NUL or a lone surrogate (both only reachable through escapes). */
function stringRuleBroken(s: string): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) return 'holds U+0000';
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return 'holds a lone surrogate';
    }
    if (c >= 0xdc00 && c <= 0xdfff) return 'holds a lone surrogate';
  }
  return undefined;
}

/** A name as it may appear in an error detail: printable ASCII only, at most 64 characters. */
function printable(name: string): string {
  const shown = name.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '?');
  return shown.length > 64 ? `${shown.slice(0, 64)}…` : shown;
}
