import { describe, expect, it } from 'vitest';
import { jsonRuleBroken } from './json-rules.js';

describe('request bodies: I-JSON and no NUL', () => {
  it.each([
    ['{"a":1,"a":2}', 'The body names "a" twice in one object'],
    ['{"a":1,"\\u0061":2}', 'The body names "a" twice in one object'],
    ['{"x":{"b":[1,{"c":1,"c":1}]}}', 'The body names "c" twice in one object'],
    ['{"market":"MOON-USDC","side":"buy","side":"sell"}', 'The body names "side" twice in one object'],
    ['{"a":"\\u0000"}', 'A string of the body holds U+0000'],
    ['{"a\\u0000":1}', 'A member name of the body holds U+0000'],
    ['["\\ud800"]', 'A string of the body holds a lone surrogate'],
    ['{"a":"\\udc00x"}', 'A string of the body holds a lone surrogate'],
    ['{"a":"\\ud800\\u0041"}', 'A string of the body holds a lone surrogate'],
    ['{"\\n\\"":1,"\\n\\"":2}', 'The body names "??" twice in one object'],
  ])('refuses %s', (text, why) => {
    JSON.parse(text); // valid JSON, all of them
    expect(jsonRuleBroken(text)).toBe(why);
  });

  it.each([
    '{"a":1,"b":{"a":1},"c":[{"a":1},{"a":1}]}',
    '{"a":"{\\"a\\":1,\\"a\\":2}"}',
    '{"a":"a","b":"a"}',
    '["a","a"]',
    '{"a":"\\ud83d\\ude00 \\u00e9 😀"}',
    '{"":1,"\\\\":2,"\\"":3}',
    '{ "a" : [ ] , "b" : { } , "c" : "," }',
    '"just a string"',
    '42',
    '{}',
  ])('accepts %s', (text) => {
    JSON.parse(text);
    expect(jsonRuleBroken(text)).toBeUndefined();
  });
});
