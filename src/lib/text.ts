import { fail, ok, type Result } from '../errors/registry.js';

/**
 * Characters that make a display string lie about itself: control characters (C0, DEL, C1), line
 * and paragraph separators, and invisible format characters (bidi marks, embeddings, overrides and
 * isolates, zero-width space, word joiner, BOM, soft hyphen, …). Zero-width (non-)joiners stay
 * allowed: emoji sequences and Persian script need them.
 */
const UNSAFE = /[\p{Cc}\u2028\u2029]|(?![\u200c\u200d])\p{Cf}/u;
/**
 * A joiner that joins nothing: at either end, or beside ASCII or whitespace ("USDC" + U+200D reads
 * as USDC). Emoji sequences and Persian script put them between two other characters.
 */
const LOOSE_JOINER = /(?:^|[\x00-\x7f\s])[\u200c\u200d\u034f]|[\u200c\u200d\u034f](?:$|[\x00-\x7f\s])/u;
/**
 * Invisible characters that are letters or marks by category, so not refused as format characters,
 * yet never needed in a name: the Hangul fillers (U+115F, U+1160, U+3164, U+FFA0) and the Khmer
 * inherent vowels (U+17B4, U+17B5, whose use Unicode discourages). The combining grapheme joiner
 * (U+034F) is held to the joiners' rule above.
 */
const FILLER = /[\u115f\u1160\u17b4\u17b5\u3164\uffa0]/u;
/**
 * A variation selector that selects nothing: at the start, or after ASCII or whitespace
 * ("USDC" + U+FE0F reads as USDC). Emoji, CJK ideographs and Mongolian letters take them after
 * themselves; of ASCII, only a keycap base before its keycap (1, U+FE0F, U+20E3).
 */
const LOOSE_SELECTOR = /(?:^|\s|[\x00-\x22\x24-\x29\x2b-\x2f\x3a-\x7f])[\u180b-\u180d\u180f\ufe00-\ufe0f\u{e0100}-\u{e01ef}]|[#*0-9](?:[\u180b-\u180d\u180f\ufe00-\ufe0e\u{e0100}-\u{e01ef}]|\ufe0f(?!\u20e3))/u;

/** Whether a text holds a character that makes it lie about itself (see above). */
function lies(text: string): boolean {
  return UNSAFE.test(text) || LOOSE_JOINER.test(text) || FILLER.test(text) || LOOSE_SELECTOR.test(text);
}
/**
 * What does not show: whitespace, format characters (joiners included), the other default-ignorable
 * code points (Hangul fillers U+115F, U+1160, U+3164, U+FFA0, variation selectors, U+034F, …: letters
 * or marks by category, blank on screen) and the blank Braille pattern U+2800.
 */
const INVISIBLE = /[\s\p{Cf}\p{Default_Ignorable_Code_Point}\u2800]/gu;

/**
 * A one-line label or name that people read (API-key labels, token and asset names, address-book
 * labels): trimmed, 1 to `max` characters, no unsafe character, and at least one visible one.
 */
export function displayText(input: string, field: string, max: number): Result<string, 'validation_failed'> {
  const text = input.trim();
  if (text.length < 1 || text.length > max) return fail('validation_failed', `${field} must be 1–${max} characters`);
  if (text.replace(INVISIBLE, '') === '') return fail('validation_failed', `${field} must contain a visible character`);
  if (lies(text)) return fail('validation_failed', `${field} must not contain control, bidirectional or invisible formatting characters`);
  return ok(text);
}

/** Multi-line text (a description): like displayText, but tabs and line breaks are allowed. */
export function displayParagraphs(input: string, field: string, max: number): Result<string, 'validation_failed'> {
  const text = input.trim();
  if (text.length > max) return fail('validation_failed', `${field} must be at most ${max} characters`);
  const oneLine = text.replace(/[\t\n\r]/g, ' ');
  if (lies(oneLine)) return fail('validation_failed', `${field} must not contain control, bidirectional or invisible formatting characters`);
  return ok(text);
}
