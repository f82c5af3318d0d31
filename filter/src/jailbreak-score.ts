/**
 * The jailbreak classifier: a logistic-regression model over hashed features of the normalised
 * text (character 3/4/5-grams and word uni/bigrams) plus one learned weight per phrase rule.
 * Training (scripts/train-jailbreak.ts) and the filter use these same functions, so a score at
 * training time is the score the filter computes.
 *
 * Long texts are scored in windows of `window` features overlapping by half, and the text's
 * score is its highest window: an attack sentence buried in pages of harmless text is not
 * diluted away, and the cost stays one pass over the text.
 */
import { CONCEPTS } from "./jailbreak-lexicon";
import { JAILBREAK_RULES } from "./jailbreak-rules";

/** Features hash into 2^FEATURE_BITS buckets. */
export const FEATURE_BITS = 14;

/** Code units the features read: ASCII letters and digits, and every non-ASCII unit (other scripts). */
const kept = (c: number) => (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c >= 128;

/** 32-bit finaliser (murmur3 fmix32): nearby inputs land in unrelated buckets. */
function bucket(h: number): number {
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h & ((1 << FEATURE_BITS) - 1);
}

const mix = (h: number, c: number) => Math.imul(h ^ c, 0x01000193);
/** Distinct seeds so a 3-gram, a 4-gram, a word and a bigram with equal letters get different buckets. */
const SEED_3 = 0x3a8f05c5;
const SEED_4 = 0x4b1d2e77;
const SEED_5 = 0x5c2e3f19;
const SEED_WORD = 0x6d3f4a2b;
const SEED_BIGRAM = 0x7e405b3d;

const QUOTE_TOGGLE = 1;
const QUOTE_OPEN = 2;
const QUOTE_CLOSE = 3;
/** `"` toggles; typographic, guillemet and corner quotes open and close. */
function quoteMark(c: number): number {
    if (c === 0x22) return QUOTE_TOGGLE;
    if (c === 0x201c || c === 0xab || c === 0x300c || c === 0x300e || c === 0x201e) return QUOTE_OPEN;
    if (c === 0x201d || c === 0xbb || c === 0x300d || c === 0x300f) return QUOTE_CLOSE;
    return 0;
}

/** Words: CJK ideographs, kana and Hangul, which are written without spaces between words. */
const unspaced = (c: number) => (c >= 0x2e80 && c <= 0x9fff) || (c >= 0xac00 && c <= 0xd7af);

const NONE: readonly { stem: string; concept: number }[] = [];

/** Two concepts at most this many words apart form a pair feature. */
const PAIR_WINDOW = 8;
const SEED_CONCEPT = 0x1f2e3d4c;
const SEED_PAIR = 0x2a3b4c5d;
/**
 * A concept or pair counts this many times an n-gram: with the same regularisation, the model
 * then prefers the few general concepts to the many n-grams that only fit the phrasings it saw.
 */
const CONCEPT_GAIN = 2;
/** An n-gram counts this much: there are about three per character, against one word feature per word. */
const NGRAM_VALUE = 0.4;

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
    let prefixLengths = 0;
    names.forEach((name, concept) => {
        for (const entry of CONCEPTS[name]!) {
            const whole = entry.startsWith("=");
            const stem = whole ? entry.slice(1) : entry;
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
    // Ids 0..k-1: concepts outside quotation marks; k..2k-1: the same concepts inside.
    const k = names.length;
    const conceptBucket = Int32Array.from({ length: 2 * k }, (_, c) => bucket(mix(SEED_CONCEPT, c)));
    const pairBucket = new Int32Array(4 * k * k);
    for (let a = 0; a < 2 * k; a++) for (let b = 0; b < 2 * k; b++) pairBucket[a * 2 * k + b] = bucket(mix(mix(SEED_PAIR, Math.min(a, b)), Math.max(a, b)));
    return { concepts: k, prefix, exact, prefixLengths, unspacedByFirst, conceptBucket, pairBucket };
})();

/**
 * Calls `visit` with the bucket of every feature of the normalised text `t`, in text order:
 * character 3/4/5-grams, words, word bigrams, lexicon concepts and concept pairs. Runs of other
 * characters (punctuation, spaces, `_`) read as one space, so n-grams span word edges. Each
 * character is looked at a bounded number of times, whatever the text.
 */
export function forEachFeature(t: string, visit: (bucket: number, value: number) => void): void {
    const { prefix, exact, prefixLengths, unspacedByFirst, conceptBucket, pairBucket, concepts } = LEXICON;
    // Word index at which each concept was last seen (-PAIR_WINDOW - 1: not yet).
    const lastSeen = new Int32Array(concepts).fill(-PAIR_WINDOW - 1);
    let words = 0;
    // Inside quotation marks a concept is a different feature: "ignore previous instructions"
    // quoted in a question about it reads differently from the same words said to the model.
    let quoted = 0;
    const concept = (c: number) => {
        const q = quoted * concepts;
        visit(conceptBucket[q + c]!, CONCEPT_GAIN);
        for (let a = 0; a < concepts; a++) if (a !== c && words - lastSeen[a]! <= PAIR_WINDOW) visit(pairBucket[(q + a) * 2 * concepts + q + c]!, CONCEPT_GAIN);
        lastSeen[c] = words;
    };
    // Previous kept characters, most recent first; 32 (space) stands for "start of text".
    let p1 = 32;
    let p2 = 32;
    let p3 = 32;
    let p4 = 32;
    let word = SEED_WORD;
    let wordLength = 0;
    let wordStart = 0;
    let wordMatched = false;
    let wordUnspaced = false;
    let previousWord = 0;
    for (let i = 0, n = t.length; i <= n; i++) {
        let c = i < n ? t.charCodeAt(i) : 32;
        const mark = quoteMark(c);
        if (mark !== 0) {
            quoted = mark === QUOTE_TOGGLE ? quoted ^ 1 : mark === QUOTE_OPEN ? 1 : 0;
            c = 32;
        }
        if (!kept(c)) {
            if (p1 === 32) continue;
            c = 32;
        }
        if (p2 !== 32 || p1 !== 32) visit(bucket(mix(mix(mix(SEED_3, p2), p1), c)), NGRAM_VALUE);
        visit(bucket(mix(mix(mix(mix(SEED_4, p3), p2), p1), c)), NGRAM_VALUE);
        visit(bucket(mix(mix(mix(mix(mix(SEED_5, p4), p3), p2), p1), c)), NGRAM_VALUE);
        if (c === 32) {
            if (wordLength > 0) {
                visit(bucket(word), 1);
                if (previousWord !== 0) visit(bucket(mix(mix(SEED_BIGRAM, previousWord), word)), 1);
                previousWord = word;
                if (!wordMatched) {
                    const whole = exact.get(word);
                    if (whole !== -1) concept(whole);
                }
                if (wordUnspaced) {
                    for (let k = wordStart; k < i; k++) {
                        for (const { stem, concept: id } of unspacedByFirst.get(t.charCodeAt(k)) ?? NONE) if (k + stem.length <= i && t.startsWith(stem, k)) concept(id);
                    }
                }
                words++;
            }
            word = SEED_WORD;
            wordLength = 0;
            wordMatched = false;
            wordUnspaced = false;
        } else {
            if (wordLength === 0) wordStart = i;
            word = mix(word, c);
            wordLength++;
            if (unspaced(c)) wordUnspaced = true;
            if (!wordMatched && wordLength < 32 && (prefixLengths >>> wordLength) & 1) {
                const stem = prefix.get(word);
                if (stem !== -1) {
                    concept(stem);
                    wordMatched = true;
                }
            }
        }
        p4 = p3;
        p3 = p2;
        p2 = p1;
        p1 = c;
    }
}

/** A trained model as the filter uses it (weights dequantised). */
export interface Scorer {
    readonly bias: number;
    /** Weight per bucket, length 2^FEATURE_BITS. */
    readonly weights: Float32Array;
    /** Added once when the phrase rule with this id fires on the text. */
    readonly ruleWeights: Readonly<Record<string, number>>;
    /** Features per scoring window (even). */
    readonly window: number;
}

/**
 * Texts with fewer features are scaled as if they had this many: otherwise one word of a short
 * string ("RSA", "refuse") carries the weight of a whole sentence.
 */
export const MIN_FEATURES = 100;

/** Sum of feature weights over `count` features, scaled so a text's length does not decide its score. */
export const windowScore = (sum: number, count: number) => sum / Math.sqrt(Math.max(count, MIN_FEATURES));

/**
 * Block in which each bucket was last counted: a feature counts once per block, so repeating a
 * sentence a thousand times scores like the sentence (training counts each feature once per text).
 * Shared by every call (the filter is single-threaded and `score` does not re-enter).
 */
const lastBlock = new Int32Array(1 << FEATURE_BITS);
let block = 0;

/** Features of the text being scored, collected first so the scoring loop runs on plain locals. */
let collectedBuckets = new Int32Array(1 << 14);
let collectedValues = new Float32Array(1 << 14);
let collected = 0;
function collect(b: number, v: number): void {
    if (collected === collectedBuckets.length) {
        const buckets = new Int32Array(collected * 2);
        const values = new Float32Array(collected * 2);
        buckets.set(collectedBuckets);
        values.set(collectedValues);
        collectedBuckets = buckets;
        collectedValues = values;
    }
    collectedBuckets[collected] = b;
    collectedValues[collected++] = v;
}

/**
 * Log-odds that the normalised text `t` is an attack, given the id of the phrase rule that fired
 * on it (if any). Features are read in blocks of `window / 2` distinct features and each window
 * is two neighbouring blocks; a text of at most one window is scored exactly as in training.
 */
export function score(model: Scorer, t: string, rule: string | undefined): number {
    collected = 0;
    forEachFeature(t, collect);
    const half = model.window / 2;
    const w = model.weights;
    const buckets = collectedBuckets;
    const values = collectedValues;
    let best = -Infinity;
    let previousSum = 0;
    let previousCount = 0;
    let sum = 0;
    let count = 0;
    // One call uses fewer than 2^22 blocks (a block is 1,000 features, a few per character).
    if (++block > 0x7fffffff - (1 << 22)) {
        lastBlock.fill(0);
        block = 1;
    }
    for (let i = 0; i < collected; i++) {
        const b = buckets[i]!;
        if (lastBlock[b] === block) continue;
        lastBlock[b] = block;
        sum += w[b]! * values[i]!;
        if (++count < half) continue;
        if (previousCount > 0) best = Math.max(best, windowScore(previousSum + sum, previousCount + count));
        previousSum = sum;
        previousCount = count;
        sum = 0;
        count = 0;
        block++;
    }
    if (count > 0 || best === -Infinity) best = Math.max(best, windowScore(previousSum + sum, previousCount + count));
    return model.bias + (rule === undefined ? 0 : (model.ruleWeights[rule] ?? 0)) + best;
}

/** Format tag of jailbreak-model.json; a trainer writing another layout must change it. */
export const MODEL_FORMAT = "zto-jailbreak-logreg-1";

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
 * than run without the check): int8 weights times `weightScale`, one per feature bucket.
 */
export function loadModel(doc: unknown): JailbreakModel {
    if (typeof doc !== "object" || doc === null) throw new Error("jailbreak model: not an object");
    const d = doc as Record<string, unknown>;
    if (d.format !== MODEL_FORMAT) throw new Error(`jailbreak model: "format" must be ${MODEL_FORMAT}`);
    if (d.featureBits !== FEATURE_BITS) throw new Error(`jailbreak model: "featureBits" must be ${FEATURE_BITS}`);
    const window = finite(d, "window");
    if (!Number.isInteger(window) || window < 2 || window % 2 !== 0) throw new Error('jailbreak model: "window" must be an even integer >= 2');
    if (typeof d.corpusSha256 !== "string" || !/^[0-9a-f]{64}$/.test(d.corpusSha256)) throw new Error('jailbreak model: "corpusSha256" must be a SHA-256 hex digest');
    if (typeof d.weightsInt8Base64 !== "string") throw new Error('jailbreak model: "weightsInt8Base64" must be a string');
    const bytes = Buffer.from(d.weightsInt8Base64, "base64");
    if (bytes.length !== 1 << FEATURE_BITS) throw new Error(`jailbreak model: "weightsInt8Base64" must hold ${1 << FEATURE_BITS} weights`);
    const scale = finite(d, "weightScale");
    const weights = Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length), (q) => q * scale);
    const rules = d.ruleWeights;
    if (typeof rules !== "object" || rules === null) throw new Error('jailbreak model: "ruleWeights" must be an object');
    const ruleIds = [...new Set(JAILBREAK_RULES.map((r) => r.id))].sort();
    if (Object.keys(rules).sort().join() !== ruleIds.join()) throw new Error(`jailbreak model: "ruleWeights" must have exactly the rule ids ${ruleIds.join(", ")}`);
    const ruleWeights: Record<string, number> = {};
    for (const id of ruleIds) ruleWeights[id] = finite(rules as Record<string, unknown>, id);
    return { bias: finite(d, "bias"), threshold: finite(d, "threshold"), window, weights, ruleWeights, corpusSha256: d.corpusSha256 };
}
