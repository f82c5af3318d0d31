/**
 * Compatibility folding shared by the PII and jailbreak checks, defined by Unicode category rather
 * than by a list of characters, so a code point nobody thought of cannot hide a value:
 * - NFKC turns full-width and stylised letters and digits into ASCII (`４１１１…` is `4111…`);
 * - every space other than U+0020 (Zs, U+2028/U+2029, VT, FF, NEL) becomes U+0020;
 * - every invisible code point is dropped: format characters (Cf: soft hyphen, zero-width joiners,
 *   bidi controls, tag characters U+E0000–E007F), Unicode's default-ignorable code points
 *   (variation selectors U+FE00–FE0F and U+E0100–E01EF, Hangul fillers, ...), control characters
 *   other than tab/LF/CR, and combining marks (Mn/Me) that combine with nothing visible (at the
 *   start of the text or after a space).
 * Zero-width separators (U+200B, U+180E) are ambiguous: a model may read them as nothing
 * (`bob\u200b@example.com` is one address) or as a word break (`ignore\u200ball` is two words).
 * `foldCompatibility` drops them; `foldedForms` also gives the reading where they are spaces, and
 * the filter inspects every form.
 * Printable ASCII text is returned as is (the common case costs one regex test).
 */
const NOT_PLAIN = /[^\t\n\r\x20-\x7e]/;
const ZERO_WIDTH_SEPARATORS = /[\u200b\u180e]/g;
const HAS_ZERO_WIDTH_SEPARATOR = /[\u200b\u180e]/;
const SPACES = /[\p{Zs}\p{Zl}\p{Zp}\v\f\u0085]/gu;
/** Cf, default-ignorable and control code points, except tab, LF and CR. */
const INVISIBLE = /(?![\t\n\r])[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Cc}]/gu;
/** Combining marks with no visible base: at the start, or after a space or line break. */
const LOOSE_MARKS = /(^|[ \t\n\r])[\p{Mn}\p{Me}]+/gu;

function fold(text: string, separator: "" | " "): string {
    const spaced = text.normalize("NFKC").replace(ZERO_WIDTH_SEPARATORS, separator).replace(SPACES, " ").replace(INVISIBLE, "");
    // Dropping an invisible character can bring a base and its mark together: compose again.
    return spaced.normalize("NFKC").replace(LOOSE_MARKS, "$1");
}

/** The folded text with zero-width separators dropped (the reading that joins `bob\u200b@x.com`). */
export function foldCompatibility(text: string): string {
    return NOT_PLAIN.test(text) ? fold(text, "") : text;
}

/**
 * Every reading of `text` the detectors must see: the folded text, and when it contains a
 * zero-width separator also the folding where each separator is a space. One element for plain text.
 */
export function foldedForms(text: string): readonly string[] {
    if (!NOT_PLAIN.test(text)) return [text];
    const joined = fold(text, "");
    if (!HAS_ZERO_WIDTH_SEPARATOR.test(text)) return [joined];
    const separated = fold(text, " ");
    return separated === joined ? [joined] : [joined, separated];
}
