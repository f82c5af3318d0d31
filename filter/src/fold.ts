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
const HAS_ZERO_WIDTH_SEPARATOR = /[\u200b\u180e]/;
// Set subtraction (the `v` flag, built at run time: the project's TypeScript lib is ES2022) keeps
// each pattern one character class, which the engine scans for without per-position lookarounds.
/** Every space other than U+0020. */
const SPACE_PATTERN = "[[\\p{Zs}\\p{Zl}\\p{Zp}\\v\\f\\u0085]--[ ]]";
const HAS_SPACE = new RegExp(SPACE_PATTERN, "v");
/** Cf, default-ignorable and control code points, except tab, LF and CR (zero-width separators included). */
const INVISIBLE = new RegExp("[[\\p{Cf}\\p{Default_Ignorable_Code_Point}\\p{Cc}]--[\\t\\n\\r]]", "gv");
/** Combining marks with no visible base: at the start, or after a space or line break. */
const LOOSE_MARKS = /(?<=^|[ \t\n\r])[\p{Mn}\p{Me}]+/gu;

/** Per UTF-16 code unit: 1 when it folds to U+0020 (every space-like code point is in the BMP). */
const SPACE_UNITS = (() => {
    const units = new Uint8Array(0x10000);
    const one = new RegExp(`^${SPACE_PATTERN}$`, "v");
    for (let c = 0; c < 0x10000; c++) if (one.test(String.fromCharCode(c))) units[c] = 1;
    return units;
})();
const UTF16 = new TextDecoder("utf-16le");

/**
 * Spaces (and, when asked, zero-width separators) to U+0020, one code unit for one: a table walk,
 * because a regex replace building a million one-character pieces costs far more.
 */
function toSpaces(text: string, separators: boolean): string {
    if (!HAS_SPACE.test(text) && !(separators && HAS_ZERO_WIDTH_SEPARATOR.test(text))) return text;
    const units = new Uint16Array(text.length);
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        units[i] = SPACE_UNITS[c] || (separators && (c === 0x200b || c === 0x180e)) ? 32 : c;
    }
    return UTF16.decode(units);
}

function fold(text: string, separators: boolean): string {
    const spaced = toSpaces(text.normalize("NFKC"), separators).replace(INVISIBLE, "");
    // Dropping an invisible character can bring a base and its mark together: compose again.
    return spaced.normalize("NFKC").replace(LOOSE_MARKS, "");
}

/** The folded text with zero-width separators dropped (the reading that joins `bob\u200b@x.com`). */
export function foldCompatibility(text: string): string {
    return NOT_PLAIN.test(text) ? fold(text, false) : text;
}

/**
 * Every reading of `text` the detectors must see: the folded text, and when it contains a
 * zero-width separator also the folding where each separator is a space. One element for plain text.
 */
export function foldedForms(text: string): readonly string[] {
    if (!NOT_PLAIN.test(text)) return [text];
    const joined = fold(text, false);
    if (!HAS_ZERO_WIDTH_SEPARATOR.test(text)) return [joined];
    const separated = fold(text, true);
    return separated === joined ? [joined] : [joined, separated];
}
