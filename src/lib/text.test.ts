import { describe, expect, it } from 'vitest';
import { displayParagraphs, displayText } from './text.js';

describe('displayText', () => {
  it('trims and accepts ordinary text, emoji sequences with joiners, and Persian with a non-joiner', () => {
    expect(displayText('  trading bot 1 ', 'label', 64)).toEqual({ ok: true, value: 'trading bot 1' });
    expect(displayText('Rainbow 🏳️‍🌈', 'name', 64).ok).toBe(true);
    expect(displayText('می‌خواهم', 'name', 64).ok).toBe(true);
    expect(displayText('Ünïcödé 月', 'name', 64).ok).toBe(true);
  });

  it.each([
    ['NUL', 'bot\u0000'],
    ['a line break', 'bot\nadmin'],
    ['DEL', 'bot\u007f'],
    ['a C1 control', 'bot\u0085'],
    ['a right-to-left override', 'gnp.\u202eexe'],
    ['a right-to-left mark', 'bot\u200f'],
    ['an Arabic letter mark', 'bot\u061c'],
    ['a bidi isolate', '\u2067bot'],
    ['a zero-width space', 'b\u200bot'],
    ['a byte-order mark', 'b\ufeffot'],
    ['a word joiner', 'b\u2060ot'],
    ['a soft hyphen', 'b\u00adot'],
    ['a line separator', 'b\u2028ot'],
    ['a joiner after ASCII', 'USDC\u200d'],
    ['a non-joiner between ASCII letters', 'US\u200cDC'],
    ['a joiner after a space', 'Moon \u200d🚀'],
  ])('refuses %s', (_what, text) => {
    expect(displayText(text, 'label', 64)).toMatchObject({ ok: false, code: 'validation_failed' });
  });

  // Invisible characters that are not format characters by category (marks and letters), so the
  // Cf rule missed them: "USDC" followed or split by one of them reads as USDC.
  it.each([
    ['a variation selector after ASCII', 'USDC\ufe0f'],
    ['a variation selector at the start', '\ufe0eMoon'],
    ['a supplementary variation selector after ASCII', 'USDC\u{e0100}'],
    ['a Mongolian variation selector after ASCII', 'US\u180bDC'],
    ['a combining grapheme joiner between ASCII letters', 'US\u034fDC'],
    ['a combining grapheme joiner at the end', 'USDC\u034f'],
    ['a Hangul filler', 'USDC\u3164'],
    ['a Hangul choseong filler', 'US\u115fDC'],
    ['a Hangul jungseong filler', 'US\u1160DC'],
    ['a halfwidth Hangul filler', 'US\uffa0DC'],
    ['a Khmer inherent vowel', 'US\u17b4DC'],
    ['a keycap base with a variation selector but no keycap', '1\ufe0f bot'],
  ])('refuses %s', (_what, text) => {
    expect(displayText(text, 'label', 64)).toMatchObject({ ok: false, code: 'validation_failed' });
    expect(displayParagraphs(text, 'description', 100)).toMatchObject({ ok: false, code: 'validation_failed' });
  });

  it('accepts variation selectors where they select something: emoji, keycaps, CJK', () => {
    for (const text of ['I \u2764\ufe0f moon', '\u2764\ufe0f', 'Rainbow 🏳️‍🌈 flag', 'Press 1\ufe0f\u20e3 now', '#\ufe0f\u20e3', '\u845b\u{e0100}城', '\u263a\ufe0e text']) {
      expect(displayText(text, 'name', 64), JSON.stringify(text)).toMatchObject({ ok: true });
    }
  });

  it('refuses blank, invisible-only and over-long text', () => {
    expect(displayText('   ', 'label', 64).ok).toBe(false);
    expect(displayText('\u200d\u200c', 'label', 64)).toMatchObject({ ok: false, code: 'validation_failed' });
    expect(displayText('\u3164', 'label', 64)).toMatchObject({ ok: false, detail: 'label must contain a visible character' });
    // Blank on screen though not format characters: Hangul fillers, a variation selector, the blank Braille pattern.
    for (const blank of ['\u3164', '\uffa0', '\u115f\u1160', '\ufe0f', '\u2800', '\u3164\u200d\u2800']) {
      expect(displayText(blank, 'name', 64), JSON.stringify(blank)).toMatchObject({ ok: false, detail: 'name must contain a visible character' });
    }
    expect(displayText('x'.repeat(65), 'label', 64).ok).toBe(false);
    expect(displayText('x'.repeat(64), 'label', 64).ok).toBe(true);
  });
});

describe('displayParagraphs', () => {
  it('allows tabs and line breaks but not other controls or bidi overrides', () => {
    expect(displayParagraphs('line one\n\tline two\r\n', 'description', 100)).toEqual({ ok: true, value: 'line one\n\tline two' });
    expect(displayParagraphs('a\u202eb', 'description', 100).ok).toBe(false);
    expect(displayParagraphs('a\u0007b', 'description', 100).ok).toBe(false);
    expect(displayParagraphs('a\u200db', 'description', 100).ok).toBe(false);
    expect(displayParagraphs('', 'description', 100).ok).toBe(true);
  });
});
