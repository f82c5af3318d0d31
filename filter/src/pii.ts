/**
 * PII and secret detectors. Every detector runs in time linear in the input: hand-written
 * scanners anchored on a cheap trigger character, or regexes with a literal prefix and only
 * bounded, non-nested quantifiers (constant work per start position). Checksums (Luhn for cards,
 * mod-97 for IBANs) are computed incrementally while scanning, so validating costs O(1) per
 * candidate end. `npm run bench:filter` measures each detector on 1 MiB adversarial input.
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
    const v = (c | 0x20) - 97 + 10;
    return (rem * 100 + v) % 97;
}

/**
 * IBAN: country letters, two check digits, 11-30 alphanumerics, optionally grouped by single
 * spaces. The longest prefix ending at a group boundary whose mod-97 is 1 is the match.
 */
function scanIbans(t: string, push: Push): void {
    const n = t.length;
    let i = 0;
    while (i + 15 <= n) {
        const c0 = t.charCodeAt(i);
        if (!isLetter(c0) || (i > 0 && isAlnum(t.charCodeAt(i - 1))) || !isLetter(t.charCodeAt(i + 1)) || !isDigit(t.charCodeAt(i + 2)) || !isDigit(t.charCodeAt(i + 3))) {
            i++;
            continue;
        }
        // The check moves the first four characters to the end: fold the body first, then those four.
        const finish = (rem: number) => {
            for (let k = 0; k < 4; k++) rem = mod97Fold(rem, t.charCodeAt(i + k));
            return rem;
        };
        let j = i + 4;
        let count = 4;
        let rem = 0;
        let best = -1;
        const consider = (end: number) => {
            if (count >= 15 && finish(rem) === 1) best = end;
        };
        while (j < n) {
            const c = t.charCodeAt(j);
            if (isAlnum(c)) {
                if (++count > 34) break;
                rem = mod97Fold(rem, c);
                j++;
                continue;
            }
            if (c === 32 && j + 1 < n && isAlnum(t.charCodeAt(j + 1))) {
                consider(j);
                j++;
                continue;
            }
            break;
        }
        if (count <= 34 && (j >= n || !isAlnum(t.charCodeAt(j)))) consider(j);
        if (best !== -1) {
            push(i, best);
            i = best;
        } else i++;
    }
}

const doubled = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];

/**
 * Payment cards: 13-19 digits, optionally grouped by single spaces or dashes, first digit 2-6
 * (the card networks' ranges), Luhn-valid. Luhn depends on the parity of the final length, so
 * both parities' sums are kept while scanning.
 */
function scanPaymentCards(t: string, push: Push): void {
    const n = t.length;
    let i = 0;
    while (i < n) {
        const c0 = t.charCodeAt(i);
        if (!isDigit(c0) || (i > 0 && isAlnum(t.charCodeAt(i - 1)))) {
            i++;
            continue;
        }
        let j = i;
        let digits = 0;
        let sumOddDoubled = 0; // Luhn sum when the total digit count is even
        let sumEvenDoubled = 0; // ... and when it is odd
        let allSame = true;
        let best = -1;
        while (j < n) {
            const c = t.charCodeAt(j);
            if (isDigit(c)) {
                const d = c - 48;
                digits++;
                if (digits > 19) break;
                if (d !== c0 - 48) allSame = false;
                if (digits % 2 === 1) {
                    sumOddDoubled += doubled[d]!;
                    sumEvenDoubled += d;
                } else {
                    sumOddDoubled += d;
                    sumEvenDoubled += doubled[d]!;
                }
                j++;
                const next = j < n ? t.charCodeAt(j) : 0;
                if (!isDigit(next) && digits >= 13 && !isLetter(next)) {
                    const sum = digits % 2 === 0 ? sumOddDoubled : sumEvenDoubled;
                    if (sum % 10 === 0 && !allSame && c0 >= 50 && c0 <= 54) best = j;
                }
                continue;
            }
            if ((c === 32 || c === 45) && j + 1 < n && isDigit(t.charCodeAt(j + 1)) && j > i) {
                j++;
                continue;
            }
            break;
        }
        if (best !== -1) {
            push(i, best);
            i = best;
        } else {
            // Skip the rest of this digit run: no card can start inside it (its left neighbour is a digit).
            i++;
            while (i < n && isDigit(t.charCodeAt(i))) i++;
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
    "payment-card": hasDigit,
    "us-ssn": hasDigit,
    iban: hasDigit,
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
