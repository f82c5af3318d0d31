/**
 * Jailbreak / prompt-injection phrase rules, one input of the check in jailbreak.ts. Text is
 * normalised (NFKC folds full-width letters, invisible characters are dropped) and scanned
 * once for vocabulary words, ASCII case folded as it is read (no lower-cased copy is made); each
 * rule is a short sequence of word classes where every next word must follow within a small
 * window. The matcher looks at each word a bounded number of times, so the cost is linear in the
 * input no matter how it is crafted (the one regex, the template tokens' alternation of
 * literals, has no quantifier).
 */

import { foldCompatibility } from "./fold";

export interface JailbreakRule {
    /** Stable id reported as `rule` in refusals and audit events. */
    readonly id: string;
    /** Word classes in order; each step's word must follow the previous one within `within` words (12 characters each). */
    readonly steps: readonly { readonly words: readonly string[]; readonly within: number }[];
}

const seq = (...words: string[][]) => words.map((w, i) => ({ words: w, within: i === 0 ? 0 : 1 }));
const near = (within: number, ...classes: string[][]) => classes.map((w, i) => ({ words: w, within: i === 0 ? 0 : within }));

const INSTRUCTION_NOUNS = ["instruction", "instructions", "rules", "guidelines", "directives", "prompt", "prompts", "guardrails", "restrictions", "policy", "policies", "programming", "constraints"];
const PERSONA_VERBS = ["pretend", "act", "behave", "roleplay", "imagine", "become", "respond", "answer", "reply", "operate"];

export const JAILBREAK_RULES: readonly JailbreakRule[] = [
    {
        id: "jailbreak.ignore-instructions",
        steps: [
            { words: ["ignore", "disregard", "forget", "override", "bypass", "skip", "abandon"], within: 0 },
            { words: ["previous", "prior", "above", "earlier", "preceding", "all", "any", "your", "system", "initial", "original", "safety"], within: 4 },
            { words: INSTRUCTION_NOUNS, within: 3 },
        ],
    },
    { id: "jailbreak.dan", steps: seq(["do"], ["anything"], ["now"]) },
    { id: "jailbreak.dan", steps: near(1, ["dan", "stan", "dude"], ["mode", "jailbreak", "persona"]) },
    { id: "jailbreak.dan", steps: near(1, ["you", "act"], ["are", "as"], ["dan"]) },
    { id: "jailbreak.developer-mode", steps: near(3, ["enable", "enabled", "activate", "activated", "enter", "entering", "unlock", "unlocked", "switch"], ["developer", "god", "jailbreak", "unrestricted", "sudo"], ["mode"]) },
    { id: "jailbreak.developer-mode", steps: near(3, ["developer", "god", "jailbreak", "sudo"], ["mode"], ["enabled", "activated", "on", "unlocked"]) },
    { id: "jailbreak.unrestricted-persona", steps: near(5, PERSONA_VERBS, ["unrestricted", "unfiltered", "uncensored", "amoral", "unaligned", "jailbroken", "unethical"]) },
    { id: "jailbreak.unrestricted-persona", steps: near(5, PERSONA_VERBS, ["without", "no", "free", "ignoring"], ["restrictions", "filters", "censorship", "limitations", "limits", "safeguards", "guidelines", "ethics", "morals", "rules"]) },
    {
        id: "jailbreak.system-prompt-leak",
        steps: [
            { words: ["reveal", "print", "show", "repeat", "output", "display", "leak", "disclose", "dump", "recite", "tell"], within: 0 },
            { words: ["system", "initial", "hidden", "secret", "original", "developer"], within: 5 },
            { words: ["prompt", "prompts", "instructions", "message"], within: 2 },
        ],
    },
    { id: "injection.role-override", steps: near(2, ["new", "updated", "revised", "real"], ["system"], ["prompt", "instructions", "message", "rules"]) },
    { id: "injection.role-override", steps: seq(["system"], ["override"]) },
];

/**
 * Chat-template control tokens: in user text they forge turns (a fake system message). Llama 2's
 * opening `[INST]` is left out (it collides with code like `a[inst]`); its `[/INST]` and `<<SYS>>` are in.
 */
export const TEMPLATE_TOKENS: readonly string[] = ["<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|system|>", "<<sys>>", "[/inst]", "<start_of_turn>", "<|endoftext|>", "<|begin_of_text|>"];
export const TEMPLATE_TOKEN_RULE = "injection.chat-template-tokens";
// hasTemplateToken looks for these two openers first.
if (TEMPLATE_TOKENS.some((token) => token[0] !== "<" && token[0] !== "[")) throw new Error('jailbreak rules: every template token must open with "<" or "["');

interface CompiledRule {
    readonly id: string;
    /** Window per step (index 0 unused: the first step starts anywhere). */
    readonly within: readonly number[];
}

/**
 * Rules compiled to integer tables: each vocabulary word gets an id, and `stepMask[r * words +
 * id]` holds the steps of rule r that word satisfies (bit s for step s).
 */
interface Vocabulary {
    readonly words: readonly string[];
    readonly stepMask: Uint8Array;
    readonly rules: readonly CompiledRule[];
}

function compile(rules: readonly JailbreakRule[]): Vocabulary {
    const ids = new Map<string, number>();
    for (const rule of rules) for (const step of rule.steps) for (const w of step.words) if (!ids.has(w)) ids.set(w, ids.size);
    const stepMask = new Uint8Array(rules.length * ids.size);
    rules.forEach((rule, r) => rule.steps.forEach((step, s) => step.words.forEach((w) => (stepMask[r * ids.size + ids.get(w)!]! |= 1 << s))));
    return { words: [...ids.keys()], stepMask, rules: rules.map((rule) => ({ id: rule.id, within: rule.steps.map((s) => s.within) })) };
}

const VOCABULARY = compile(JAILBREAK_RULES);
const WORDS = VOCABULARY.words.length;

/**
 * The reading of a raw text the jailbreak check scans: NFKC-folded, without invisible
 * characters. Case is not folded here: the scanners fold it per character as they read.
 */
export function normalise(text: string): string {
    return foldCompatibility(text);
}

/** A step's window is `within` words and at most this many characters per word, so checking it is bounded. */
const CHARS_PER_WORD = 12;
const MAX_WORD = Math.max(...VOCABULARY.words.map((w) => w.length));

/** ASCII upper-case letters read as lower-case (the only case the rules' words need). */
const lower = (c: number) => (c >= 65 && c <= 90 ? c | 0x20 : c);
const isWordChar = (c: number) => (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || (c >= 65 && c <= 90);

/** Per ASCII code unit: its lower case if it is a word character, else 0 (one lookup instead of three range tests and a case fold). */
const WORD_UNITS = Uint8Array.from({ length: 128 }, (_, c) => (isWordChar(c) ? lower(c) : 0));
const wordUnit = (c: number) => (c < 128 ? WORD_UNITS[c]! : 0);

/** Words (runs of a-z, A-Z, 0-9) in t[from, to). */
function wordsBetween(t: string, from: number, to: number): number {
    let words = 0;
    for (let i = from, inWord = false; i < to; i++) {
        const w = isWordChar(t.charCodeAt(i));
        if (w && !inWord) words++;
        inWord = w;
    }
    return words;
}

const hashStep = (h: number, c: number) => (Math.imul(h, 31) + c) | 0;
/**
 * Vocabulary word ids by hash, so the scan below looks words up without cutting substrings: open
 * addressing in typed arrays (a Map keyed by hashes that are not small integers costs far more
 * per word). Equal hashes of different words take neighbouring slots; the lookup compares text.
 */
const SLOTS = 1024;
const SLOT_HASH = new Int32Array(SLOTS);
const SLOT_WORD = new Int32Array(SLOTS).fill(-1);
VOCABULARY.words.forEach((word, id) => {
    let h = 0;
    for (let i = 0; i < word.length; i++) h = hashStep(h, word.charCodeAt(i));
    let slot = h & (SLOTS - 1);
    while (SLOT_WORD[slot] !== -1) slot = (slot + 1) & (SLOTS - 1);
    SLOT_HASH[slot] = h;
    SLOT_WORD[slot] = id;
});
if (VOCABULARY.words.length > SLOTS / 2) throw new Error("jailbreak rules: vocabulary too large for its table");

/**
 * Vocabulary words found in a text, as typed arrays (a 1 MiB prompt can hold ~300k words).
 * One instance, reused by every scan (grown, never shrunk): a decision allocates nothing here.
 */
const hits = { count: 0, start: new Int32Array(256), end: new Int32Array(256), word: new Int32Array(256), /** 1 for every word id that occurs at least once. */ seen: new Uint8Array(WORDS) };
type Hits = typeof hits;

const grow = (a: Int32Array) => {
    const b = new Int32Array(a.length * 2);
    b.set(a);
    return b;
};

function pushHit(start: number, end: number, word: number): void {
    if (hits.count === hits.start.length) {
        hits.start = grow(hits.start);
        hits.end = grow(hits.end);
        hits.word = grow(hits.word);
    }
    hits.start[hits.count] = start;
    hits.end[hits.count] = end;
    hits.word[hits.count] = word;
    hits.count++;
    hits.seen[word] = 1;
}

/**
 * One pass over the normalised text: split into runs of ASCII letters and digits (so `_`,
 * punctuation and other scripts separate words), hash each lower-cased run while reading it and
 * keep those in the vocabulary.
 * Fills the shared `hits`, valid until the next call.
 */
function vocabularyHits(t: string): Hits {
    hits.count = 0;
    hits.seen.fill(0);
    const n = t.length;
    let i = 0;
    while (i < n) {
        while (i < n && wordUnit(t.charCodeAt(i)) === 0) i++;
        const start = i;
        let h = 0;
        for (; i < n; i++) {
            const c = wordUnit(t.charCodeAt(i));
            if (c === 0) break;
            h = hashStep(h, c);
        }
        if (i === start || i - start > MAX_WORD) continue;
        for (let slot = h & (SLOTS - 1); SLOT_WORD[slot] !== -1; slot = (slot + 1) & (SLOTS - 1)) {
            if (SLOT_HASH[slot] !== h) continue;
            const id = SLOT_WORD[slot]!;
            if (sameWord(VOCABULARY.words[id]!, t, start, i)) {
                pushHit(start, i, id);
                break;
            }
        }
    }
    return hits;
}

/** True when `t[start, end)` is the lower-case `word` in any ASCII case. */
function sameWord(word: string, t: string, start: number, end: number): boolean {
    if (word.length !== end - start) return false;
    for (let k = 0; k < word.length; k++) if (lower(t.charCodeAt(start + k)) !== word.charCodeAt(k)) return false;
    return true;
}

/** The tokens as one case-insensitive alternation of literals (no quantifier: linear in the text). */
const TEMPLATE_PATTERN = new RegExp(TEMPLATE_TOKENS.map((token) => token.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|"), "i");

/** True when the normalised text holds a chat-template control token, in any case. */
export function hasTemplateToken(t: string): boolean {
    // Every token opens with "<" or "[": a text holding neither costs two single-character searches.
    return (t.includes("<") || t.includes("[")) && TEMPLATE_PATTERN.test(t);
}

/**
 * Id of the first phrase rule that fires on the normalised text `t`, or undefined. With `skip`, a
 * match whose span [start, end) `skip` accepts does not count and the scan goes on.
 */
export function matchRules(t: string, skip?: (start: number, end: number) => boolean): string | undefined {
    const hits = vocabularyHits(t);
    const { rules, stepMask } = VOCABULARY;
    for (let r = 0; r < rules.length; r++) {
        const within = rules[r]!.within;
        const row = r * WORDS;
        // A rule with a step none of the text's words satisfies cannot fire: skip it, so a flood of
        // one trigger word costs one pass over the text, not one per rule.
        let present = 0;
        for (let w = 0; w < WORDS; w++) if (hits.seen[w]) present |= stepMask[row + w]!;
        if (present !== (1 << within.length) - 1) continue;
        // Greedy: from each start word, take the nearest word of each next step inside its window.
        // Windows are a few words wide, so each hit is looked at a bounded number of times.
        for (let h = 0; h < hits.count; h++) {
            if (!(stepMask[row + hits.word[h]!]! & 1)) continue;
            let at = h;
            let step = 1;
            while (step < within.length) {
                const from = hits.end[at]!;
                const limit = from + within[step]! * CHARS_PER_WORD;
                let found = -1;
                for (let k = at + 1; k < hits.count && hits.start[k]! <= limit; k++) {
                    if (stepMask[row + hits.word[k]!]! & (1 << step) && wordsBetween(t, from, hits.start[k]!) < within[step]!) {
                        found = k;
                        break;
                    }
                }
                if (found === -1) break;
                at = found;
                step++;
            }
            if (step === within.length && !skip?.(hits.start[h]!, hits.end[at]!)) return rules[r]!.id;
        }
    }
    return undefined;
}

/** Rule ids in a fixed order: the model has one feature per id (a rule match it was handed, below). */
export const RULE_IDS: readonly string[] = [...new Set(JAILBREAK_RULES.map((r) => r.id))];

/**
 * Words outside the quotation marks that make a rule match overlapping them a *mention* (as a `?`
 * there does): the text asks about the phrase (what it means, how to detect or label it) instead of
 * saying it to the model.
 */
const MENTION_WORDS = new Set([
    "what", "why", "how", "explain", "mean", "means", "meaning", "classify", "label", "detect", "detects", "detector", "detection", "flag", "flagged", "catch", "catches", "distinguish", "describe",
    "example", "examples", "sample", "phrase", "pattern", "attack", "attacks", "injection", "jailbreak", "jailbreaks", "attempt", "attempts", "famous", "meme", "known", "typed", "posted", "tried", "log", "logs", "logged", "incident", "moderation", "worry",
]);
/** Words outside the quotation marks that ask the model to carry the quoted text out: never a mention. */
const OBEY_WORDS = new Set(["follow", "obey", "execute", "comply", "perform", "carry", "apply", "enact", "adopt", "decode"]);

/** 1 for a quotation mark that opens and closes alike, 2 for an opening and 3 for a closing one. */
function mentionQuote(t: string, i: number): number {
    const c = t.charCodeAt(i);
    if (c === 0x22 || c === 0x60) return 1;
    if (c === 0x27) {
        // An apostrophe inside a word ("don't") is no quotation mark.
        const before = i > 0 && isWordChar(t.charCodeAt(i - 1));
        const after = i + 1 < t.length && isWordChar(t.charCodeAt(i + 1));
        return before === after ? 0 : before ? 3 : 2;
    }
    if (c === 0x201c || c === 0x201e || c === 0xab || c === 0x300c || c === 0x300e || c === 0x2018) return 2;
    if (c === 0x201d || c === 0xbb || c === 0x300d || c === 0x300f || c === 0x2019) return 3;
    return 0;
}

/**
 * Closed quoted spans of `t`, and whether the text outside every quote asks about something (a
 * mention word or a `?`) without asking the model to carry anything out (an obey word). One pass,
 * only run when a rule matched.
 */
function quotedSpans(t: string): { spans: Int32Array; count: number; asks: boolean } {
    let spans = new Int32Array(16);
    let count = 0;
    let open = -1;
    let mention = false;
    let obey = false;
    let question = false;
    for (let i = 0, n = t.length; i < n; ) {
        const q = mentionQuote(t, i);
        if (q !== 0) {
            if (open === -1 && q !== 3) open = i;
            else if (open !== -1 && q !== 2) {
                if (count * 2 === spans.length) {
                    const grown = new Int32Array(spans.length * 2);
                    grown.set(spans);
                    spans = grown;
                }
                spans[count * 2] = open;
                spans[count * 2 + 1] = i;
                count++;
                open = -1;
            }
            i++;
            continue;
        }
        if (!isWordChar(t.charCodeAt(i))) {
            if (open === -1 && t.charCodeAt(i) === 0x3f) question = true;
            i++;
            continue;
        }
        const start = i;
        while (i < n && isWordChar(t.charCodeAt(i))) i++;
        if (open === -1 && i - start <= 12) {
            const word = t.slice(start, i).toLowerCase();
            if (MENTION_WORDS.has(word)) mention = true;
            if (OBEY_WORDS.has(word)) obey = true;
        }
    }
    // An unclosed quote leaves the rest of the text unquoted; words after it were counted as
    // quoted, which can only make a mention less likely, never more.
    return { spans, count, asks: (mention || question) && !obey };
}

/** What the phrase rules say about the normalised text `t`. */
export interface RuleVerdict {
    /** Rule id that refuses the text outright, or undefined. */
    readonly refuse: string | undefined;
    /** Index in RULE_IDS of a rule that matched only where it overlaps quotation marks of a mention, or -1: the model decides it. */
    readonly ruleFeature: number;
}

/**
 * The rules' verdict: template tokens and every rule match refuse outright, except a match that
 * overlaps closed quotation marks of a text that asks about it (a mention word or a `?` outside
 * the quotes, no obey word): 'enable "developer mode"' as much as '"enable developer mode"'.
 * Such a match is handed to the model as a feature instead (docs/filter.md, "Quoted attack
 * phrases"). A match that touches no quotation marks refuses even in a question.
 */
export function ruleVerdict(t: string): RuleVerdict {
    if (hasTemplateToken(t)) return { refuse: TEMPLATE_TOKEN_RULE, ruleFeature: -1 };
    let quotes: { spans: Int32Array; count: number; asks: boolean } | undefined;
    const overlapsQuotes = (start: number, end: number) => {
        quotes ??= quotedSpans(t);
        if (!quotes.asks) return false;
        // Spans are sorted and disjoint: binary search for the last one opening before `end`.
        let lo = 0;
        let hi = quotes.count - 1;
        let k = -1;
        while (lo <= hi) {
            const mid = (lo + hi) >> 1;
            if (quotes.spans[2 * mid]! < end) {
                k = mid;
                lo = mid + 1;
            } else hi = mid - 1;
        }
        return k !== -1 && quotes.spans[2 * k + 1]! > start;
    };
    const refuse = matchRules(t, overlapsQuotes);
    if (refuse !== undefined) return { refuse, ruleFeature: -1 };
    const mentioned = quotes === undefined ? undefined : matchRules(t);
    return { refuse: undefined, ruleFeature: mentioned === undefined ? -1 : RULE_IDS.indexOf(mentioned) };
}
