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
const LOOSE_JOINER = /(?:^|[\x00-\x7f\s])[\u200c\u200d]|[\u200c\u200d](?:$|[\x00-\x7f\s])/u;
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
  if (UNSAFE.test(text) || LOOSE_JOINER.test(text)) return fail('validation_failed', `${field} must not contain control, bidirectional or invisible formatting characters`);
  if (text.replace(INVISIBLE, '') === '') return fail('validation_failed', `${field} must contain a visible character`);
  return ok(text);
}

/** Multi-line text (a description): like displayText, but tabs and line breaks are allowed. */
export function displayParagraphs(input: string, field: string, max: number): Result<string, 'validation_failed'> {
  const text = input.trim();
  if (text.length > max) return fail('validation_failed', `${field} must be at most ${max} characters`);
  const oneLine = text.replace(/[\t\n\r]/g, ' ');
  if (UNSAFE.test(oneLine) || LOOSE_JOINER.test(oneLine)) return fail('validation_failed', `${field} must not contain control, bidirectional or invisible formatting characters`);
  return ok(text);
}
