/**
 * PII and secret detectors. Every detector runs in time linear in the input: hand-written
 * scanners anchored on a cheap trigger character, or regexes with a literal prefix and only
 * bounded, non-nested quantifiers (constant work per start position). Card Luhn sums are kept
 * incrementally while scanning, so validating costs O(1) per candidate end; an IBAN's mod-97 is
 * computed once, for a candidate of its country's exact length and grouping (at most 34
 * characters). `npm run bench:filter` measures each detector on 1 MiB adversarial input.
 */
import { PII_DETECTORS, type PiiDetector } from "../../components/filter/rules";

export interface PiiMatch {
    readonly type: PiiDetector;
    readonly start: number;
    readonly end: number;
}

type Push = (start: number, end: number) => void;

const isDigit = (c: number) => c >= 48 && c <= 57;
const isUpper = (c: number) => c >= 65 && c <= 90;
const isLower = (c: number) => c >= 97 && c <= 122;
const isLetter = (c: number) => isUpper(c) || isLower(c);
const isAlnum = (c: number) => isDigit(c) || isLetter(c);

/** `-----BEGIN ... PRIVATE KEY-----` through its END line; an unterminated block runs to the end of the text. */
function scanPrivateKeys(t: string, push: Push): void {
    const begin = "-----BEGIN ";
    let i = t.indexOf(begin);
    while (i !== -1) {
        const labelStart = i + begin.length;
        const labelEnd = t.indexOf("-----", labelStart);
        if (labelEnd === -1) return;
        const label = labelEnd - labelStart <= 40 ? t.slice(labelStart, labelEnd) : "";
        if (!/PRIVATE KEY( BLOCK)?$/.test(label)) {
            i = t.indexOf(begin, labelStart);
            continue;
        }
        const endLine = t.indexOf("-----END ", labelEnd + 5);
        const close = endLine === -1 ? -1 : t.indexOf("-----", endLine + 9);
        const end = close === -1 ? t.length : close + 5;
        push(i, end);
        i = t.indexOf(begin, end);
    }
}

/** Runs a global regex; `group` selects the capture to report (needs the `d` flag). */
function scanRegex(re: RegExp, group: number, accept?: (m: RegExpExecArray) => boolean): (t: string, push: Push) => void {
    return (t, push) => {
        re.lastIndex = 0;
        for (let m = re.exec(t); m; m = re.exec(t)) {
            if (accept && !accept(m)) continue;
            if (group === 0) push(m.index, m.index + m[0].length);
            else {
                const span = m.indices![group]!;
                push(span[0], span[1]);
            }
        }
    };
}

const scanAwsAccessKeys = scanRegex(/(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])/g, 0);
/** A 40-character secret is only recognisable next to its name, so the key name anchors it. */
const scanAwsSecretKeys = scanRegex(/aws[ _-]?secret[ _-]?(?:access[ _-]?)?key["']?[ \t]{0,3}[:=][ \t]{0,3}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/dgi, 1);
const scanGithubTokens = scanRegex(/(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])/g, 0);
const scanSlackTokensOnly = scanRegex(/(?<![A-Za-z0-9])xox[abposre]-[A-Za-z0-9-]{10,250}/g, 0);
const scanSlackWebhooks = scanRegex(/https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9_/]{20,120}/g, 0);
function scanSlackTokens(t: string, push: Push): void {
    scanSlackTokensOnly(t, push);
    scanSlackWebhooks(t, push);
}

/** SSA never issues area 000, 666 or 9xx, group 00 or serial 0000. */
const scanSsns = scanRegex(/(?<![A-Za-z0-9-])(\d{3})([- ])(\d{2})\2(\d{4})(?![A-Za-z0-9]|-\d)/g, 0, (m) => {
    const area = m[1]!;
    return area !== "000" && area !== "666" && area[0] !== "9" && m[3] !== "00" && m[4] !== "0000";
});

/** IBAN digit value of a character (A=10 ... Z=35); the mod-97 fold multiplies by 100 for letters. */
function mod97Fold(rem: number, c: number): number {
    if (isDigit(c)) return (rem * 10 + (c - 48)) % 97;
    return (rem * 100 + ((c | 0x20) - 97 + 10)) % 97;
}

/** IBAN length per country (ISO 13616 registry); a country not listed has no IBAN. */
const IBAN_LENGTHS: Record<string, number> = {
    AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28, CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29,
    ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20,
    LB: 28, LC: 32, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29,
    RO: 24, RS: 22, SA: 24, SC: 31, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20,
};
/** IBAN length by country code, indexed (first letter - A) * 26 + (second - A) in either case; 0: no IBAN. */
const IBAN_LENGTH_BY_CODE = (() => {
    const table = new Uint8Array(26 * 26);
    for (const [code, length] of Object.entries(IBAN_LENGTHS)) table[(code.charCodeAt(0) - 65) * 26 + code.charCodeAt(1) - 65] = length;
    return table;
})();
/** Two letters and two check digits: where an IBAN may start. */
const IBAN_START = /[A-Za-z]{2}[0-9]{2}/g;
/** True when position `i` of `t` does not continue a word (ASCII letters and digits). */
const wordStart = (t: string, i: number) => i === 0 || !isAlnum(t.charCodeAt(i - 1));

/**
 * IBAN: a registered country code, two check digits, then exactly the country's length in
 * alphanumerics, optionally grouped by single spaces, with mod-97 equal to 1. Work per start is
 * bounded by the longest IBAN (34 characters plus separators).
 */
function scanIbans(t: string, push: Push): void {
    const n = t.length;
    // Starts are found by `test` on a global regex, which moves `lastIndex` and allocates no match
    // (an exec per start would allocate one, and a megabyte of "DE89 " holds 200,000 starts).
    const starts = IBAN_START;
    starts.lastIndex = 0;
    while (starts.test(t)) {
        const i = starts.lastIndex - 4;
        starts.lastIndex = i + 1;
        const a = t.charCodeAt(i);
        const b = t.charCodeAt(i + 1);
        if (!wordStart(t, i)) continue;
        const length = IBAN_LENGTH_BY_CODE[((a | 0x20) - 97) * 26 + (b | 0x20) - 97]!;
        if (length === 0) continue;
        // Alphanumerics, single spaces between groups: one read per character (a space is taken
        // on trust and given back when no alphanumeric follows it).
        let j = i + 4;
        let count = 4;
        let afterSpace = false;
        while (count < length) {
            if (j >= n) {
                if (afterSpace) j--;
                break;
            }
            const c = t.charCodeAt(j);
            if (isAlnum(c)) {
                count++;
                afterSpace = false;
            } else if (c === 32 && !afterSpace) afterSpace = true;
            else {
                if (afterSpace) j--;
                break;
            }
            j++;
        }
        if (count !== length || (j < n && isAlnum(t.charCodeAt(j)))) continue;
        // Only a candidate of the right shape pays for the checksum. The check moves the first
        // four characters to the end: fold them in last.
        let rem = 0;
        for (let k = i + 4; k < j; k++) {
            const c = t.charCodeAt(k);
            if (c !== 32) rem = mod97Fold(rem, c);
        }
        for (let k = i; k < i + 4; k++) rem = mod97Fold(rem, t.charCodeAt(k));
        if (rem === 1) {
            push(i, j);
            starts.lastIndex = j;
        }
    }
}

const doubled = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
/** True when the digits read so far, followed by `next`, are a whole card number: 13+ digits, Luhn-valid, not all one digit. */
const cardEnds = (digits: number, sumIfEven: number, sumIfOdd: number, allSame: boolean, next: number) => digits >= 13 && !isAlnum(next) && (digits % 2 === 0 ? sumIfEven : sumIfOdd) % 10 === 0 && !allSame;
/** A 2-6 and two more digits: where a card number may start. */
const CARD_START = /[2-6][0-9]{2}/g;

/**
 * Payment cards: 13-19 digits, first digit 2-6, grouped by single spaces or dashes after groups of
 * at least 3 digits, Luhn-valid, not all one digit. Luhn depends on the parity of the final
 * length, so both parities' sums are kept while scanning; each start reads at most 19 digits.
 */
function scanPaymentCards(t: string, push: Push): void {
    const n = t.length;
    // A start: a 2-6 (the card networks' ranges) opening a group of 3+ digits, not inside a word
    // (found the way scanIbans finds its starts).
    const starts = CARD_START;
    starts.lastIndex = 0;
    while (starts.test(t)) {
        const i = starts.lastIndex - 3;
        starts.lastIndex = i + 1;
        const first = t.charCodeAt(i);
        if (!wordStart(t, i)) continue;
        let j = i;
        let digits = 0;
        let group = 0;
        let sumIfEven = 0; // Luhn sum if the final digit count is even (odd positions doubled)
        let sumIfOdd = 0; // ... and if it is odd (even positions doubled)
        let allSame = true;
        let best = -1;
        // One read per character: a digit's candidacy as the last one is decided by the character
        // after it, when that is read (the end of the text counts as a non-alphanumeric).
        while (true) {
            if (j >= n) {
                if (cardEnds(digits, sumIfEven, sumIfOdd, allSame, 0)) best = j;
                break;
            }
            const c = t.charCodeAt(j);
            if (isDigit(c)) {
                const d = c - 48;
                if (++digits > 19) break;
                group++;
                if (c !== first) allSame = false;
                if (digits % 2 === 1) {
                    sumIfEven += doubled[d]!;
                    sumIfOdd += d;
                } else {
                    sumIfEven += d;
                    sumIfOdd += doubled[d]!;
                }
                j++;
                continue;
            }
            // Every non-digit here follows a digit (a separator is only taken before one).
            if (cardEnds(digits, sumIfEven, sumIfOdd, allSame, c)) best = j;
            if ((c === 32 || c === 45) && group >= 3 && j + 1 < n && isDigit(t.charCodeAt(j + 1))) {
                group = 0;
                j++;
                continue;
            }
            break;
        }
        if (best !== -1) {
            push(i, best);
            starts.lastIndex = best;
        }
    }
}

const isLocalPartChar = (c: number) => isAlnum(c) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45; // . _ % + -
const isDomainChar = (c: number) => isAlnum(c) || c === 46 || c === 45;

function validDomain(d: string): boolean {
    const labels = d.split(".");
    if (labels.length < 2) return false;
    for (const l of labels) if (!l.length || l.length > 63 || l.startsWith("-") || l.endsWith("-")) return false;
    const tld = labels[labels.length - 1]!;
    return tld.length >= 2 && tld.length <= 24 && /^[A-Za-z]+$/.test(tld);
}

/** Emails, anchored on '@': expansion stops at the neighbouring '@', so total work is linear. */
function scanEmails(t: string, push: Push): void {
    const n = t.length;
    let floor = 0;
    let at = t.indexOf("@");
    while (at !== -1) {
        let s = at;
        while (s > floor && at - s < 64 && isLocalPartChar(t.charCodeAt(s - 1))) s--;
        while (s < at && t.charCodeAt(s) === 46) s++;
        let e = at + 1;
        while (e < n && e - at <= 253 && isDomainChar(t.charCodeAt(e))) e++;
        while (e > at + 1 && (t.charCodeAt(e - 1) === 46 || t.charCodeAt(e - 1) === 45)) e--;
        if (s < at && validDomain(t.slice(at + 1, e))) {
            push(s, e);
            floor = e;
            at = t.indexOf("@", e);
        } else at = t.indexOf("@", at + 1);
    }
}

/** North-American numbers with separators: (555) 123-4567, 555-123-4567, +1 555.123.4567. */
const scanNanpPhones = scanRegex(/(?<![A-Za-z0-9+.-])(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![A-Za-z0-9]|[.-]\d)/g, 0);

/** International numbers: '+', then 8-15 digits separated by at most one of ` .-()` at a time. */
function scanInternationalPhones(t: string, push: Push): void {
    const n = t.length;
    let i = t.indexOf("+");
    while (i !== -1) {
        const prev = i > 0 ? t.charCodeAt(i - 1) : 32;
        const first = i + 1 < n ? t.charCodeAt(i + 1) : 0;
        if (isAlnum(prev) || prev === 43 || !isDigit(first) || first === 48) {
            i = t.indexOf("+", i + 1);
            continue;
        }
        let j = i + 1;
        let digits = 0;
        let lastDigitEnd = j;
        let separators = 0;
        while (j < n && j - i <= 24) {
            const c = t.charCodeAt(j);
            if (isDigit(c)) {
                digits++;
                separators = 0;
                lastDigitEnd = j + 1;
            } else if (c === 32 || c === 46 || c === 45 || c === 40 || c === 41) {
                if (++separators > 2) break;
            } else break;
            j++;
        }
        const after = lastDigitEnd < n ? t.charCodeAt(lastDigitEnd) : 32;
        if (digits >= 8 && digits <= 15 && !isAlnum(after)) {
            push(i, lastDigitEnd);
            i = t.indexOf("+", lastDigitEnd);
        } else i = t.indexOf("+", i + 1);
    }
}

function scanPhones(t: string, push: Push): void {
    scanNanpPhones(t, push);
    scanInternationalPhones(t, push);
}

const SCANNERS: Record<PiiDetector, (t: string, push: Push) => void> = {
    "private-key": scanPrivateKeys,
    "aws-access-key": scanAwsAccessKeys,
    "aws-secret-key": scanAwsSecretKeys,
    "github-token": scanGithubTokens,
    "slack-token": scanSlackTokens,
    iban: scanIbans,
    "payment-card": scanPaymentCards,
    "us-ssn": scanSsns,
    email: scanEmails,
    phone: scanPhones,
};

/** Cheap pre-checks: a detector whose trigger cannot occur in the text is skipped entirely. */
const hasDigit = (t: string) => /\d/.test(t);
const TRIGGERS: Partial<Record<PiiDetector, (t: string) => boolean>> = {
    "private-key": (t) => t.includes("-----BEGIN "),
    "aws-secret-key": (t) => /aws/i.test(t),
    email: (t) => t.includes("@"),
    "us-ssn": hasDigit,
    phone: hasDigit,
};

const PRIORITY = new Map<PiiDetector, number>(PII_DETECTORS.map((d, i) => [d, i]));

/**
 * Every PII match in `text` for the given detectors, sorted and non-overlapping. Where matches
 * overlap, the earlier one wins, then the detector listed first in PII_DETECTORS (secrets before
 * generic numbers), then the longer one.
 */
export function findPii(text: string, detectors: readonly PiiDetector[]): PiiMatch[] {
    const all: PiiMatch[] = [];
    for (const type of detectors) {
        const trigger = TRIGGERS[type];
        if (trigger && !trigger(text)) continue;
        SCANNERS[type](text, (start, end) => all.push({ type, start, end }));
    }
    if (all.length < 2) return all;
    all.sort((a, b) => a.start - b.start || PRIORITY.get(a.type)! - PRIORITY.get(b.type)! || b.end - a.end);
    const out: PiiMatch[] = [];
    let cursor = 0;
    for (const m of all) {
        if (m.start < cursor) continue;
        out.push(m);
        cursor = m.end;
    }
    return out;
}

/** The placeholder that replaces a match of `type` in a redacted body. */
export const placeholder = (type: PiiDetector) => `[REDACTED:${type}]`;

/** `text` with each match replaced by its typed placeholder; matches must come from findPii. */
export function redact(text: string, matches: readonly PiiMatch[]): string {
    let out = "";
    let cursor = 0;
    for (const m of matches) {
        out += text.slice(cursor, m.start) + placeholder(m.type);
        cursor = m.end;
    }
    return out + text.slice(cursor);
}
