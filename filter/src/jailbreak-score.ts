/**
 * The jailbreak classifier: logistic regression over features of the normalised text, each a
 * 0/1 indicator with its own weight:
 * - character 4-grams (runs of punctuation and spaces read as one space, so they span word
 *   edges), hashed into NGRAM_BUCKETS weights;
 * - words and word bigrams, hashed into WORD_BUCKETS weights;
 * - concepts of a small multilingual lexicon (jailbreak-lexicon.ts) and pairs of concepts a few
 *   words apart, counted apart inside quotation marks: one weight each, no hashing.
 * Training (scripts/train-jailbreak.ts) and the filter share `forEachFeature` and `score`, so a
 * score at training time is the score the filter computes.
 *
 * Cost: one pass over the text, a bounded amount of work per character, and nothing allocated
 * per call (a fixed stamp array marks features already counted). A long text is scored in
 * windows of `window` distinct features overlapping by half and its score is its highest window,
 * so an attack buried in pages of harmless text is not diluted away.
 */
import { CONCEPTS } from "./jailbreak-lexicon";
import { normalise, RULE_IDS, ruleVerdict } from "./jailbreak-rules";

export const NGRAM_BITS = 15;
export const WORD_BITS = 14;
const NGRAM_BUCKETS = 1 << NGRAM_BITS;
const WORD_BUCKETS = 1 << WORD_BITS;

/** Code units the features read: ASCII letters and digits, and every non-ASCII unit (other scripts). */
const kept = (c: number) => (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c >= 128;

/**
 * Script folding: a Latin letter with diacritics reads as its base letter (`règle`, `regle` and
 * `rêgle` are one word to the features), so accents, missing accents and lookalikes from another
 * Latin block do not each need their own weights. Table over U+00C0-U+024F from NFD.
 */
const LATIN_FOLD = (() => {
    const table = new Uint16Array(0x250);
    for (let c = 0; c < table.length; c++) {
        const base = String.fromCharCode(c).normalize("NFD").toLowerCase().charCodeAt(0);
        table[c] = c >= 0xc0 && base >= 97 && base <= 122 ? base : c;
    }
    return table;
})();
const foldLetter = (c: number) => (c >= 0xc0 && c < 0x250 ? LATIN_FOLD[c]! : c);
const foldWord = (w: string) => String.fromCharCode(...[...w].map((ch) => foldLetter(ch.charCodeAt(0))));

/** 32-bit finaliser (murmur3 fmix32): nearby inputs land in unrelated buckets. */
function fmix(h: number): number {
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
}

const mix = (h: number, c: number) => Math.imul(h ^ c, 0x01000193);
const SEED_WORD = 0x6d3f4a2b;
const SEED_BIGRAM = 0x7e405b3d;

const QUOTE_TOGGLE = 1;
const QUOTE_OPEN = 2;
const QUOTE_CLOSE = 3;
/** `"` toggles; typographic, guillemet and corner quotes open and close. */
function quoteMark(c: number): number {
    if (c === 0x22) return QUOTE_TOGGLE;
    if (c < 0xab) return 0;
    if (c === 0x201c || c === 0xab || c === 0x300c || c === 0x300e || c === 0x201e) return QUOTE_OPEN;
    if (c === 0x201d || c === 0xbb || c === 0x300d || c === 0x300f) return QUOTE_CLOSE;
    return 0;
}

/** CJK ideographs, kana and Hangul, written without spaces between words. */
const unspaced = (c: number) => (c >= 0x2e80 && c <= 0x9fff) || (c >= 0xac00 && c <= 0xd7af);

/**
 * Per UTF-16 code unit, what the scan reads: the unit after script folding, or 32 for anything
 * that is not kept (spaces, punctuation, quotation marks), and its class. One table lookup per
 * character instead of a chain of range tests.
 */
const QUOTE_BITS = 3;
const UNSPACED = 4;
const UNIT = new Uint16Array(0x10000);
const UNIT_CLASS = new Uint8Array(0x10000);
for (let u = 0; u < 0x10000; u++) {
    // Case folds here, per code unit, so the filter never makes a lower-cased copy of a text (a
    // unit whose lower case takes two units, U+0130 alone, is read as it is).
    const lowerCase = String.fromCharCode(u).toLowerCase();
    const c = foldLetter(lowerCase.length === 1 ? lowerCase.charCodeAt(0) : u);
    const mark = quoteMark(c);
    UNIT[u] = mark !== 0 || !kept(c) ? 32 : c;
    UNIT_CLASS[u] = mark | (unspaced(c) ? UNSPACED : 0);
}

/** Two concepts at most this many words apart form a pair feature. */
const PAIR_WINDOW = 8;

/** Stem hash -> concept id, open addressing in typed arrays (a Map lookup per letter costs too much). */
class StemTable {
    private readonly keys = new Int32Array(4096);
    private readonly concepts = new Int16Array(4096).fill(-1);
    private size = 0;
    set(hash: number, concept: number): void {
        if (++this.size > 2048) throw new Error("jailbreak lexicon: more than 2048 stems");
        let i = hash >>> 20;
        while (this.concepts[i] !== -1 && this.keys[i] !== hash) i = (i + 1) & 4095;
        this.keys[i] = hash;
        this.concepts[i] = concept;
    }
    /** The concept, or -1. */
    get(hash: number): number {
        for (let i = hash >>> 20; ; i = (i + 1) & 4095) {
            const c = this.concepts[i]!;
            if (c === -1 || this.keys[i] === hash) return c;
        }
    }
}

/** The lexicon compiled for the scan below: stems by the hash `mix` gives their letters. */
const LEXICON = (() => {
    const names = Object.keys(CONCEPTS);
    const prefix = new StemTable();
    const exact = new StemTable();
    const unspacedByFirst = new Map<number, { stem: string; concept: number }[]>();
    /** Per first code unit, its index in `unspacedStems` (-1: no stem starts with it): an array read per character, not a Map lookup. */
    const unspacedIndex = new Int16Array(0x10000).fill(-1);
    let prefixLengths = 0;
    names.forEach((name, concept) => {
        for (const entry of CONCEPTS[name]!) {
            const whole = entry.startsWith("=");
            const stem = foldWord(whole ? entry.slice(1) : entry);
            if (stem.length === 0 || stem.length > 31 || [...stem].some((ch) => !kept(ch.charCodeAt(0)) || ch !== ch.toLowerCase())) throw new Error(`jailbreak lexicon: ${name}: "${entry}" is not one lower-case word`);
            if (unspaced(stem.charCodeAt(0))) {
                const first = stem.charCodeAt(0);
                unspacedByFirst.set(first, [...(unspacedByFirst.get(first) ?? []), { stem, concept }]);
                continue;
            }
            let h = SEED_WORD;
            for (let i = 0; i < stem.length; i++) h = mix(h, stem.charCodeAt(i));
            (whole ? exact : prefix).set(h, concept);
            if (!whole) prefixLengths |= 1 << stem.length;
        }
    });
    // Per first unit: its stems' units after the first, and their concepts, as plain arrays.
    const unspacedStems = [...unspacedByFirst.entries()].map(([first, stems], i) => {
        unspacedIndex[first] = i;
        return { rests: stems.map((s) => Array.from(s.stem.slice(1), (ch) => ch.charCodeAt(0))), concepts: stems.map((s) => s.concept) };
    });
    const id = (name: string) => names.indexOf(name);
    return { concepts: names.length, prefix, exact, prefixLengths, unspacedIndex, unspacedStems, ai: id("ai"), addressee: id("addressee"), question: id("question"), blob: id("blob"), spelled: id("spelled"), roleWords: [id("secret"), id("instruction"), id("ai")] };
})();

/** Where each kind of feature starts in the weight array. */
export const LAYOUT = (() => {
    const k = LEXICON.concepts;
    const words = NGRAM_BUCKETS;
    const concepts = words + WORD_BUCKETS;
    // Concepts outside quotation marks are ids 0..k-1, inside k..2k-1; a pair is (a, b) of those.
    const pairs = concepts + 2 * k;
    // One feature per phrase rule id: the rule matched, but only overlapping the quotes of a mention (jailbreak-rules.ts ruleVerdict).
    const rules = pairs + 4 * k * k;
    return { ngrams: 0, words, concepts, pairs, rules, size: rules + RULE_IDS.length };
})();

/** Feature kinds, for per-kind regularisation in training. */
export type FeatureKind = "ngram" | "word" | "concept";
export const kindOf = (feature: number): FeatureKind => (feature < LAYOUT.words ? "ngram" : feature < LAYOUT.concepts ? "word" : "concept");

/** Odd multipliers: the n-gram polynomial base and a Fibonacci-hashing constant. */
const BASE = 0x01000193;
const BASE_2 = Math.imul(BASE, BASE);
const BASE_3 = Math.imul(BASE_2, BASE);
const GOLDEN_4 = 0x85ebca77;
const NGRAM_SHIFT = 32 - NGRAM_BITS;

/**
 * Where `emit` sends features. Scoring (`score`) counts each one on the spot, with no buffer
 * between the scan and the sum; any other reader (the trainer, tests) gets them written to a
 * fixed buffer and handed over a chunk at a time. Nothing is allocated per text either way.
 */
const CHUNK = 4096;
const chunk = new Int32Array(CHUNK);
let chunkLength = 0;
let onChunk: ((features: Int32Array, length: number) => void) | undefined;
function emit(feature: number): void {
    if (onChunk === undefined) {
        if (lastBlock[feature] !== block) countFeature(feature);
        return;
    }
    chunk[chunkLength++] = feature;
    if (chunkLength === CHUNK) {
        onChunk(chunk, CHUNK);
        chunkLength = 0;
    }
}

/** State of the running scan, at module level so neither it nor `concept` is allocated per call. */
let wordsSeen = 0;
let quoted = 0;
/**
 * The last RECENT concepts counted and the word index of each, newest at `recentHead - 1`: a
 * word yields at most a few concepts, so the ring holds every concept of the last PAIR_WINDOW
 * words, and pairing a concept costs the handful seen recently rather than a pass over the lexicon.
 */
const RECENT = 64;
const recentConcept = new Int32Array(RECENT);
const recentWord = new Int32Array(RECENT);
let recentHead = 0;
let recentCount = 0;
/** Per concept, the `pairing` (call of `concept`) that last paired it. */
const pairedStamp = new Int32Array(LEXICON.concepts);
let pairing = 0;

/** Counts concept `c` at the current word, and a pair with every other concept seen a few words before. */
function concept(c: number): void {
    const k = LEXICON.concepts;
    const q = quoted * k;
    emit(LAYOUT.concepts + q + c);
    // Each pair once per call, however often its other concept recurs in the window.
    pairedStamp[c] = ++pairing;
    for (let j = 1; j <= recentCount; j++) {
        const slot = (recentHead - j) & (RECENT - 1);
        if (wordsSeen - recentWord[slot]! > PAIR_WINDOW) break;
        const a = recentConcept[slot]!;
        if (pairedStamp[a] !== pairing) {
            pairedStamp[a] = pairing;
            const x = q + a;
            const y = q + c;
            emit(LAYOUT.pairs + (x < y ? x * 2 * k + y : y * 2 * k + x));
        }
    }
    recentConcept[recentHead] = c;
    recentWord[recentHead] = wordsSeen;
    recentHead = (recentHead + 1) & (RECENT - 1);
    if (recentCount < RECENT) recentCount++;
}

/**
 * Hands `visit` the index of every feature of the normalised text `t`, in text order (a feature
 * may repeat), in chunks of a reused buffer (valid only during the call). Each character is
 * looked at a bounded number of times, whatever the text. Not re-entrant (the filter and the
 * trainer are single-threaded).
 */
export function forEachFeature(t: string, visit: (features: Int32Array, length: number) => void, ruleFeature = -1): void {
    onChunk = visit;
    chunkLength = 0;
    try {
        scan(t, ruleFeature);
        if (chunkLength > 0) visit(chunk, chunkLength);
    } finally {
        chunkLength = 0;
        onChunk = undefined;
    }
}

/** Emits every feature of `t` (see forEachFeature) to wherever `onChunk` says. */
function scan(t: string, ruleFeature: number): void {
    const { prefix, exact, prefixLengths, unspacedIndex, unspacedStems, ai, addressee, question, roleWords, blob, spelled } = LEXICON;
    if (ruleFeature >= 0) emit(LAYOUT.rules + ruleFeature);
    recentCount = 0;
    wordsSeen = 0;
    // Inside quotation marks a concept is a different feature: "ignore previous instructions"
    // quoted in a question about it reads differently from the same words said to the model.
    quoted = 0;
    // Previous kept characters, most recent first; 32 (space) stands for "start of text".
    let p1 = 32;
    let p2 = 32;
    let p3 = 32;
    let word = SEED_WORD;
    let wordLength = 0;
    let wordStart = 0;
    let wordMatched = false;
    /** The concept the current word matched, or -1. */
    let wordConcept = -1;
    let wordDigits = 0;
    /** One-letter words in a row. */
    let letterRun = 0;
    let wordUnspaced = false;
    let previousWord = 0;
    /** Word index of the last question counted. */
    let lastQuestion = -PAIR_WINDOW - 1;
    for (let i = 0, n = t.length; i <= n; i++) {
        const original = i < n ? t.charCodeAt(i) : 32;
        const c = UNIT[original]!;
        const unitClass = UNIT_CLASS[original]!;
        const mark = unitClass & QUOTE_BITS;
        if (mark !== 0) quoted = mark === QUOTE_TOGGLE ? quoted ^ 1 : mark === QUOTE_OPEN ? 1 : 0;
        if (c === 32 && p1 === 32) continue;
        // Polynomial hash of the last 4 characters, spread by one multiplication. (3- and 5-grams
        // as well cost two more features per character and did not raise cross-validated recall.)
        const h4 = (Math.imul(p3, BASE_3) + Math.imul(p2, BASE_2) + Math.imul(p1, BASE) + c) | 0;
        emit(Math.imul(h4, GOLDEN_4) >>> NGRAM_SHIFT);
        if (c === 32) {
            if (wordLength > 0) {
                emit(LAYOUT.words + (fmix(word) & (WORD_BUCKETS - 1)));
                if (previousWord !== 0) emit(LAYOUT.words + (fmix(mix(mix(SEED_BIGRAM, previousWord), word)) & (WORD_BUCKETS - 1)));
                previousWord = word;
                if (!wordMatched) {
                    const whole = exact.get(word);
                    if (whole !== -1) {
                        concept(whole);
                        wordConcept = whole;
                    }
                }
                // A role marker or an address inside the text ("System:", "AI assistant:", "bot, ..."):
                // text that speaks to the model, where data (a document, a tool description) should not.
                if ((original === 58 && roleWords.includes(wordConcept)) || (original === 44 && wordConcept === ai)) concept(addressee);
                // A question asked outside quotation marks: text that asks about something rather than
                // orders it. At most once per PAIR_WINDOW words, so a storm of "a? a? ..." costs no
                // more than plain words (the pairs a nearer question would add are mostly made already).
                if (original === 63 && quoted === 0 && wordsSeen - lastQuestion > PAIR_WINDOW) {
                    concept(question);
                    lastQuestion = wordsSeen;
                }
                if (wordUnspaced) {
                    for (let k = wordStart; k < i; k++) {
                        // Each stem found counts as a word, so pairs stay within PAIR_WINDOW stems
                        // however long the run is (a bounded number of pairs per stem).
                        const first = unspacedIndex[t.charCodeAt(k)]!;
                        if (first === -1) continue;
                        const { rests, concepts } = unspacedStems[first]!;
                        for (let m = 0; m < rests.length; m++) {
                            const rest = rests[m]!;
                            if (k + rest.length >= i) continue;
                            let r = 0;
                            while (r < rest.length && t.charCodeAt(k + 1 + r) === rest[r]) r++;
                            if (r === rest.length) {
                                concept(concepts[m]!);
                                wordsSeen++;
                            }
                        }
                    }
                }
                // Shapes of hidden payloads: a long run of letters mixed with digits (base64, hex), and
                // a word spelled out one letter at a time ("r e v e a l").
                if (wordLength >= 16 && wordDigits > 0 && wordDigits < wordLength) concept(blob);
                letterRun = wordLength === 1 ? letterRun + 1 : 0;
                if (letterRun === 4) concept(spelled);
                wordsSeen++;
            }
            word = SEED_WORD;
            wordDigits = 0;
            wordLength = 0;
            wordMatched = false;
            wordConcept = -1;
            wordUnspaced = false;
        } else {
            if (wordLength === 0) wordStart = i;
            word = mix(word, c);
            wordLength++;
            if (c <= 57) wordDigits++;
            if (unitClass & UNSPACED) wordUnspaced = true;
            if (!wordMatched && wordLength < 32 && (prefixLengths >>> wordLength) & 1) {
                const stem = prefix.get(word);
                if (stem !== -1) {
                    concept(stem);
                    wordMatched = true;
                    wordConcept = stem;
                }
            }
        }
        p3 = p2;
        p2 = p1;
        p1 = c;
    }
}

/** A trained model as the filter uses it (weights dequantised). */
export interface Scorer {
    readonly bias: number;
    /** Weight per feature (length LAYOUT.size) is weightsInt8[i] * weightScale: integer sums are cheaper. */
    readonly weightsInt8: Int8Array;
    readonly weightScale: number;
    /** Distinct features per scoring window (even). */
    readonly window: number;
}

/**
 * Texts with fewer features are scaled as if they had this many: otherwise one word of a short
 * string ("RSA", "refuse") carries the weight of a whole sentence.
 */
export const MIN_FEATURES = 50;

/** The scale of each feature of a window of `count` distinct features: its length does not decide its score. */
export const featureScale = (count: number) => 1 / Math.sqrt(Math.max(count, MIN_FEATURES));

/**
 * Block in which each feature was last counted: a feature counts once per block, so repeating a
 * sentence a thousand times scores like the sentence. Shared by every call (the filter is
 * single-threaded and `score` does not re-enter), so scoring allocates nothing.
 */
const lastBlock = new Uint16Array(LAYOUT.size);
let block = 0;

/**
 * The window being scored, kept at module level between `emit` calls. The sums are integers
 * (int8 weights) and stay small integers; only `best`, written once per block, is a float.
 */
let weights: Int8Array = new Int8Array(0);
let half = 0;
let sum = 0;
let count = 0;
let previousSum = 0;
let previousCount = 0;
let best = -Infinity;

/** Counts feature `f`, not yet counted in this block; closes the block at `window / 2` distinct features. */
function countFeature(f: number): void {
    lastBlock[f] = block;
    sum += weights[f]!;
    if (++count < half) return;
    if (previousCount > 0) best = Math.max(best, (previousSum + sum) * featureScale(previousCount + count));
    previousSum = sum;
    previousCount = count;
    sum = 0;
    count = 0;
    if (++block > 0xffff) {
        lastBlock.fill(0);
        block = 1;
    }
}

/**
 * Log-odds that the normalised text `t` is an attack. Features are read in blocks of `window / 2`
 * distinct features and each window is two neighbouring blocks; a text of at most one window is
 * scored exactly as in training.
 */
export function score(model: Scorer, t: string, ruleFeature = -1): number {
    if (++block > 0xffff) {
        lastBlock.fill(0);
        block = 1;
    }
    weights = model.weightsInt8;
    half = model.window / 2;
    sum = 0;
    count = 0;
    previousSum = 0;
    previousCount = 0;
    best = -Infinity;
    scan(t, ruleFeature);
    const last = count > 0 || best === -Infinity ? (previousSum + sum) * featureScale(previousCount + count) : -Infinity;
    return model.bias + model.weightScale * Math.max(best, last);
}

/** Format tag of jailbreak-model.json; a trainer writing another layout must change it. */
export const MODEL_FORMAT = "zto-jailbreak-logreg-4";

export interface JailbreakModel extends Scorer {
    /** Refuse when the log-odds score is at least this. */
    readonly threshold: number;
    /** SHA-256 of test/fixtures/jailbreak/corpus.jsonl the model was trained from. */
    readonly corpusSha256: string;
}

const finite = (doc: Record<string, unknown>, key: string): number => {
    const v = doc[key];
    if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`jailbreak model: "${key}" must be a finite number`);
    return v;
};

/**
 * A model document checked field by field (the filter refuses to start on a damaged one rather
 * than run without the check): int8 weights times `weightScale`, one per feature.
 */
export function loadModel(doc: unknown): JailbreakModel {
    if (typeof doc !== "object" || doc === null) throw new Error("jailbreak model: not an object");
    const d = doc as Record<string, unknown>;
    if (d.format !== MODEL_FORMAT) throw new Error(`jailbreak model: "format" must be ${MODEL_FORMAT}`);
    if (d.features !== LAYOUT.size) throw new Error(`jailbreak model: "features" must be ${LAYOUT.size} (the layout of this scorer)`);
    const window = finite(d, "window");
    if (!Number.isInteger(window) || window < 2 || window % 2 !== 0) throw new Error('jailbreak model: "window" must be an even integer >= 2');
    if (typeof d.corpusSha256 !== "string" || !/^[0-9a-f]{64}$/.test(d.corpusSha256)) throw new Error('jailbreak model: "corpusSha256" must be a SHA-256 hex digest');
    if (typeof d.weightsInt8Base64 !== "string") throw new Error('jailbreak model: "weightsInt8Base64" must be a string');
    const bytes = Buffer.from(d.weightsInt8Base64, "base64");
    if (bytes.length !== LAYOUT.size) throw new Error(`jailbreak model: "weightsInt8Base64" must hold ${LAYOUT.size} weights`);
    const scale = finite(d, "weightScale");
    const weightsInt8 = Int8Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    return { bias: finite(d, "bias"), threshold: finite(d, "threshold"), window, weightsInt8, weightScale: scale, corpusSha256: d.corpusSha256 };
}

/** Rule id of a refusal only the model made (no phrase rule fired). */
export const CLASSIFIER_RULE = "jailbreak.classifier";

/**
 * The whole check on one text: template tokens and phrase rules refuse outright, except a rule
 * matched only overlapping the quotes of a mention, which the model reads as a feature; the model refuses at
 * its threshold. Returns the refusing rule id, or undefined. `folded`: the text is already a
 * reading from fold.ts (folding again would give the same text, at the cost of NFKC).
 */
export function checkJailbreak(model: JailbreakModel, text: string, folded = false): string | undefined {
    const t = folded ? text : normalise(text);
    const { refuse, ruleFeature } = ruleVerdict(t);
    if (refuse !== undefined) return refuse;
    return score(model, t, ruleFeature) >= model.threshold ? CLASSIFIER_RULE : undefined;
}
