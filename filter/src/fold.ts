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
// The categories, written once as patterns (set subtraction needs the `v` flag, built at run
// time: the project's TypeScript lib is ES2022) and compiled into per-code-point tables below:
// irregexp tests a large Unicode class at tens of nanoseconds per character, a table read costs one.
/** Every space other than U+0020. */
const SPACE = new RegExp("^[[\\p{Zs}\\p{Zl}\\p{Zp}\\v\\f\\u0085]--[ ]]$", "v");
/** Cf, default-ignorable and control code points, except tab, LF and CR (zero-width separators included). */
const INVISIBLE = new RegExp("^[[\\p{Cf}\\p{Default_Ignorable_Code_Point}\\p{Cc}]--[\\t\\n\\r]]$", "v");
/** Combining marks: dropped where they combine with nothing visible (at the start, after a space or line break). */
const MARK = /^[\p{Mn}\p{Me}]$/u;

const IS_SPACE = 1;
const IS_INVISIBLE = 2;
const IS_MARK = 4;
const IS_SEPARATOR = 8;
/** A surrogate code unit: alone (not half of a pair) it is rewritten as U+FFFD, as Go's JSON decoder reads it. */
const IS_SURROGATE = 16;
const KNOWN = 0x80;
const classify = (ch: string) => (SPACE.test(ch) ? IS_SPACE : INVISIBLE.test(ch) ? IS_INVISIBLE | (ch === "\u200b" || ch === "\u180e" ? IS_SEPARATOR : 0) : 0) | (MARK.test(ch) ? IS_MARK : 0);
/** Per BMP code unit (lone surrogates included: none of the classes holds them). */
const BMP = Uint8Array.from({ length: 0x10000 }, (_, u) => (u >= 0xd800 && u <= 0xdfff ? IS_SURROGATE : classify(String.fromCharCode(u))));
/** Per supplementary code point, filled on first sight (KNOWN set): a million regex tests at start-up would cost more than they save. */
const ASTRAL = new Uint8Array(0x100000);
function astralClass(cp: number): number {
    const known = ASTRAL[cp - 0x10000]!;
    if (known !== 0) return known & ~KNOWN;
    const c = classify(String.fromCodePoint(cp));
    ASTRAL[cp - 0x10000] = c | KNOWN;
    return c;
}

/** Output units of the walks below, reused (grown to the longest text seen) so a call allocates only its result. */
let units = new Uint16Array(1024);
const UTF16 = new TextDecoder("utf-16le");
/** Set by `spaceAndDrop`: the text it returned holds a combining mark; it dropped a code point. */
let sawMark = false;
let dropped = false;

/** Set in a class `classAt` returns: the code point is a surrogate pair (two code units). */
const PAIR = 0x100;
/** Class of the code point at `i` whose first unit `u` is a surrogate or above (the walks read lower units from BMP inline). */
function classAt(text: string, i: number, u: number): number {
    if ((u & 0xfc00) !== 0xd800 || i + 1 >= text.length) return BMP[u]!;
    const low = text.charCodeAt(i + 1);
    if ((low & 0xfc00) !== 0xdc00) return BMP[u]!;
    return astralClass(((u - 0xd800) << 10) + (low - 0xdc00) + 0x10000) | PAIR;
}

/**
 * Spaces (and, when `separators`, zero-width separators) to U+0020, invisible code points
 * dropped, lone surrogates to U+FFFD (the decoder's replacement), in one walk. Returns the text
 * itself when nothing changed; sets `sawMark` and `dropped`.
 */
function spaceAndDrop(text: string, separators: boolean): string {
    if (units.length < text.length) units = new Uint16Array(text.length);
    // Locals, not the module variables: a loop writing those would reload them every unit.
    const out = units;
    let j = 0;
    let rewritten = false;
    let drop = false;
    let mark = false;
    for (let i = 0, n = text.length; i < n; i++) {
        const u = text.charCodeAt(i);
        const c = u < 0xd800 ? BMP[u]! : classAt(text, i, u);
        if (c & IS_SPACE || (separators && c & IS_SEPARATOR)) {
            out[j++] = 32;
            rewritten = true;
        } else if (c & IS_SURROGATE) {
            out[j++] = 0xfffd;
            rewritten = true;
        } else if (c & IS_INVISIBLE) drop = true;
        else {
            if (c & IS_MARK) mark = true;
            out[j++] = u;
            if (c & PAIR) out[j++] = text.charCodeAt(i + 1);
        }
        if (c & PAIR) i++;
    }
    dropped = drop;
    sawMark = mark;
    return rewritten || drop ? UTF16.decode(out.subarray(0, j)) : text;
}

/** Runs of combining marks at the start of the text or after a space, tab or line break, dropped. */
function dropLooseMarks(text: string): string {
    if (units.length < text.length) units = new Uint16Array(text.length);
    const out = units;
    let j = 0;
    let boundary = true;
    let changed = false;
    for (let i = 0, n = text.length; i < n; i++) {
        const u = text.charCodeAt(i);
        const c = u < 0xd800 ? BMP[u]! : classAt(text, i, u);
        if (c & PAIR) i++;
        if (boundary && c & IS_MARK) {
            changed = true;
            continue;
        }
        out[j++] = u;
        if (c & PAIR) out[j++] = text.charCodeAt(i);
        boundary = u === 32 || u === 9 || u === 10 || u === 13;
    }
    return changed ? UTF16.decode(out.subarray(0, j)) : text;
}

/** Folding of `nfkc`, a text already in NFKC (the two readings of `foldedForms` share that pass). */
function fold(nfkc: string, separators: boolean): string {
    const walked = spaceAndDrop(nfkc, separators);
    // Dropping an invisible character can bring a base and its mark together: compose again.
    // (Turning a space into U+0020 cannot: no space composes with anything.)
    const composed = dropped ? walked.normalize("NFKC") : walked;
    // NFKC itself can leave a mark with no base (U+00A8 is U+0020 U+0308), so marks go last.
    return sawMark ? dropLooseMarks(composed) : composed;
}

/** The folded text with zero-width separators dropped (the reading that joins `bob\u200b@x.com`). */
export function foldCompatibility(text: string): string {
    return NOT_PLAIN.test(text) ? fold(text.normalize("NFKC"), false) : text;
}

/**
 * Every reading of `text` the detectors must see: the folded text, and when it contains a
 * zero-width separator also the folding where each separator is a space. One element for plain text.
 */
export function foldedForms(text: string): readonly string[] {
    if (!NOT_PLAIN.test(text)) return [text];
    const nfkc = text.normalize("NFKC");
    const joined = fold(nfkc, false);
    if (!HAS_ZERO_WIDTH_SEPARATOR.test(text)) return [joined];
    const separated = fold(nfkc, true);
    return separated === joined ? [joined] : [joined, separated];
}
