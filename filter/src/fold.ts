/**
 * Compatibility folding shared by the PII and jailbreak checks: NFKC turns full-width and
 * stylised letters and digits into ASCII, and invisible characters (zero-width, soft hyphen, bidi
 * controls) are dropped, so `４１１１…` or `bob\u200b@example.com` cannot slip past a detector.
 * ASCII text is returned as is (the common case costs one regex test).
 */
const INVISIBLE = /[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]/g;
const NON_ASCII = /[^\x00-\x7f]/;

export function foldCompatibility(text: string): string {
    return NON_ASCII.test(text) ? text.normalize("NFKC").replace(INVISIBLE, "") : text;
}
