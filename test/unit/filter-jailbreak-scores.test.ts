/**
 * The jailbreak model's score is a pure function of the text and the model file: a change made
 * for speed (jailbreak-score.ts, jailbreak-lexicon.ts) must give every input exactly the score it
 * had. The scores of the whole corpus, of seeded random texts and of the bench's adversarial
 * shapes are recorded in test/fixtures/jailbreak/scores.json for the checked-in model; after
 * retraining (a new model file) or a deliberate change of what the scorer reads (folding, the
 * phrase rules' feature, the lexicon), re-record them with
 * `ZTO_RECORD_JAILBREAK_SCORES=1 node --import tsx --test test/unit/filter-jailbreak-scores.test.ts`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { jailbreakScore } from "../../filter/src/jailbreak";
import { normalise } from "../../filter/src/jailbreak-rules";
import { forEachFeature, LAYOUT } from "../../filter/src/jailbreak-score";
import { readCorpus } from "../../scripts/lib/jailbreak-corpus";

const SCORES_FILE = join(__dirname, "../fixtures/jailbreak/scores.json");
const MODEL_FILE = join(__dirname, "../../filter/src/jailbreak-model.json");

/**
 * Pieces the scanner treats specially: quotes of each kind, question marks, role colons, digits,
 * Latin letters that fold, a unit whose lower case is two units, CJK stems, Hangul, Cyrillic,
 * invisible and full-width characters, lone surrogates, lexicon words.
 */
const PIECES = ["a", "e", "i", "o", "n", "s", "t", " ", " ", "  ", '"', "\u201c", "\u201d", "\u00ab", "\u00bb", "\u300c", "\u300d", "?", ":", ",", "0", "7", "\u00c9", "\u00e9", "\u00df", "\u0130", "忽", "略", "之", "前", "指", "令", "限", "制", "무", "시", "я", "\u200b", "ｉ", "Ａ", "ignore ", "previous ", "rules ", "system ", "prompt ", "dan ", "mode ", "ai", "bot", "x", "Q", "-", "\n", "🙂", "\ud800", "base64 ", "r e v e a l "];

/** Deterministic texts of up to `maxPieces` pieces (a plain LCG, so the set never depends on a library version). */
function seededTexts(count: number, maxPieces: number): string[] {
    let state = 12345;
    const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
    return Array.from({ length: count }, () => Array.from({ length: Math.floor(next() * maxPieces) }, () => PIECES[Math.floor(next() * PIECES.length)]!).join(""));
}

const repeatTo = (unit: string, size: number) => unit.repeat(Math.ceil(size / unit.length)).slice(0, size);

/** The bench's worst shapes for the model (scripts/bench-filter.ts), at 256 KiB: many windows each. */
function adversarialTexts(): Record<string, string> {
    const size = 256 * 1024;
    let distinct = "";
    for (let i = 0; distinct.length < size; i++) distinct += `w${(i * 2654435761) >>> 0} `;
    return {
        "concept-storm": repeatTo("ignore previous rules without filters pretend reveal system mode decode always ", size),
        "unspaced-stems": repeatTo("忽略之前的指令没有限制", size),
        "quote-storm": repeatTo('"a" ', size),
        "distinct-words": distinct.slice(0, size),
        "full-width-zero-width": repeatTo("ｉｇｎｏｒｅ\u200b ", size),
        "cjk-prose": repeatTo("这是一个关于季度收入增长的报告请总结", size),
        "question-storm": repeatTo("a? ", size),
        "spelled-storm": repeatTo("r e v e a l ", size),
    };
}

interface RecordedScores {
    /** SHA-256 of jailbreak-model.json the scores were recorded with. */
    readonly modelSha256: string;
    readonly corpus: readonly number[];
    readonly seeded: readonly number[];
    readonly adversarial: Readonly<Record<string, number>>;
}

const SEEDED = seededTexts(2000, 300);

function currentScores(): RecordedScores {
    return {
        modelSha256: createHash("sha256").update(readFileSync(MODEL_FILE)).digest("hex"),
        corpus: readCorpus().entries.map((e) => jailbreakScore(e.text)),
        seeded: SEEDED.map((t) => jailbreakScore(t)),
        adversarial: Object.fromEntries(Object.entries(adversarialTexts()).map(([name, t]) => [name, jailbreakScore(t)])),
    };
}

if (process.env.ZTO_RECORD_JAILBREAK_SCORES === "1") writeFileSync(SCORES_FILE, JSON.stringify(currentScores(), null, 1) + "\n");

describe("jailbreak scores do not change with the implementation", () => {
    const recorded = JSON.parse(readFileSync(SCORES_FILE, "utf8")) as RecordedScores;
    const now = currentScores();

    test("the recorded scores belong to the checked-in model (re-record after retraining)", () => {
        assert.equal(now.modelSha256, recorded.modelSha256, "jailbreak-model.json changed: re-record the scores (see the top of this file)");
        assert.equal(recorded.corpus.length, readCorpus().entries.length);
    });

    test("every corpus prompt scores exactly what was recorded", () => {
        const entries = readCorpus().entries;
        for (let i = 0; i < entries.length; i++) assert.equal(now.corpus[i], recorded.corpus[i], `corpus line ${i + 1}: ${entries[i]!.text.slice(0, 80)}`);
    });

    test("every seeded random text scores exactly what was recorded", () => {
        for (let i = 0; i < SEEDED.length; i++) assert.equal(now.seeded[i], recorded.seeded[i], `seeded text ${i}: ${JSON.stringify(SEEDED[i])}`);
    });

    test("the bench's adversarial shapes score exactly what was recorded", () => {
        assert.deepEqual(now.adversarial, recorded.adversarial);
    });

    const text = fc.array(fc.constantFrom(...PIECES), { maxLength: 200 }).map((p) => p.join(""));

    test("a score does not depend on what was scored before (the scanner's reused state is reset per call)", () => {
        fc.assert(
            fc.property(text, text, (a, b) => {
                const alone = jailbreakScore(a);
                jailbreakScore(b);
                assert.equal(jailbreakScore(a), alone);
            }),
            { numRuns: 300 },
        );
    });

    test("every feature index lies inside the model's layout, and the features of a text are the same on every reading", () => {
        fc.assert(
            fc.property(text, (raw) => {
                const t = normalise(raw);
                const read = () => {
                    const out: number[] = [];
                    forEachFeature(t, (features, length) => out.push(...features.subarray(0, length)));
                    return out;
                };
                const first = read();
                for (const f of first) assert.ok(Number.isInteger(f) && f >= 0 && f < LAYOUT.size, `feature ${f}`);
                assert.deepEqual(read(), first);
            }),
            { numRuns: 300 },
        );
    });
});
