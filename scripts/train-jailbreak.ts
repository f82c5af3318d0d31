/**
 * `npm run train:filter`: trains the jailbreak model from the training part of
 * test/fixtures/jailbreak/corpus.jsonl (never the held-out part) and writes
 * filter/src/jailbreak-model.json with the corpus hash and the training figures.
 *
 * Logistic regression, class-weighted, L2-regularised, full-batch Adam: no random numbers, so
 * the same corpus always gives the same file. The threshold comes from 5-fold cross-validation
 * inside the training part (folds by a salted hash of the group): the lowest score that keeps
 * the out-of-fold false refusals at or under TARGET_FOLD_FPR, so it is not fitted to the very
 * prompts the final model memorised.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { JAILBREAK_RULES, matchRules, normalise } from "../filter/src/jailbreak-rules";
import { FEATURE_BITS, forEachFeature, loadModel, MIN_FEATURES, MODEL_FORMAT, score } from "../filter/src/jailbreak-score";
import { figures, isHeldOut, readCorpus, type CorpusEntry } from "./lib/jailbreak-corpus";

export const MODEL_PATH = join(__dirname, "..", "filter", "src", "jailbreak-model.json");

/** Distinct features per scoring window: several hundred characters, longer than almost every corpus prompt. */
const WINDOW = 2048;
const ITERATIONS = 500;
const LEARNING_RATE = 0.1;
const L2 = 3e-5;
const FOLDS = 5;
const FOLD_SALT = "zto-jailbreak-folds-1";
/** Out-of-fold false refusal rate the threshold is chosen for (half the held-out target, as margin). */
const TARGET_FOLD_FPR = 0.005;

const BUCKETS = 1 << FEATURE_BITS;
const RULE_IDS = [...new Set(JAILBREAK_RULES.map((r) => r.id))].sort();

interface Example {
    readonly entry: CorpusEntry;
    readonly index: Int32Array;
    readonly value: Float64Array;
    /** Index into RULE_IDS of the rule that fired, or -1. */
    readonly rule: number;
    readonly y: 0 | 1;
}

function example(entry: CorpusEntry): Example {
    const t = normalise(entry.text);
    const counts = new Map<number, number>();
    let n = 0;
    // Each feature once per text, as the filter counts it once per block.
    forEachFeature(t, (b, v) => {
        if (counts.has(b)) return;
        counts.set(b, v);
        n++;
    });
    const norm = Math.sqrt(Math.max(n, MIN_FEATURES));
    const rule = matchRules(t);
    return {
        entry,
        index: Int32Array.from(counts.keys()),
        value: Float64Array.from(counts.values(), (c) => c / norm),
        rule: rule === undefined ? -1 : RULE_IDS.indexOf(rule),
        y: entry.label === "attack" ? 1 : 0,
    };
}

interface Trained {
    bias: number;
    weights: Float64Array;
    ruleWeights: Float64Array;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

function train(examples: readonly Example[]): Trained {
    const attacks = examples.filter((e) => e.y === 1).length;
    // Each class carries half the loss, whatever its size.
    const classWeight = [examples.length / (2 * (examples.length - attacks)), examples.length / (2 * attacks)];
    const dims = 1 + RULE_IDS.length + BUCKETS; // bias, rule weights, bucket weights
    const theta = new Float64Array(dims);
    const m = new Float64Array(dims);
    const v = new Float64Array(dims);
    const grad = new Float64Array(dims);
    const b1 = 0.9;
    const b2 = 0.999;
    const W0 = 1 + RULE_IDS.length;
    for (let it = 1; it <= ITERATIONS; it++) {
        grad.fill(0);
        for (const ex of examples) {
            let z = theta[0]! + (ex.rule >= 0 ? theta[1 + ex.rule]! : 0);
            for (let k = 0; k < ex.index.length; k++) z += theta[W0 + ex.index[k]!]! * ex.value[k]!;
            const g = (classWeight[ex.y]! * (sigmoid(z) - ex.y)) / examples.length;
            grad[0]! += g;
            if (ex.rule >= 0) grad[1 + ex.rule]! += g;
            for (let k = 0; k < ex.index.length; k++) grad[W0 + ex.index[k]!]! += g * ex.value[k]!;
        }
        // Bias and rule weights are not shrunk: they are few, and a rule is strong evidence.
        for (let d = W0; d < dims; d++) grad[d]! += L2 * theta[d]!;
        for (let d = 0; d < dims; d++) {
            m[d] = b1 * m[d]! + (1 - b1) * grad[d]!;
            v[d] = b2 * v[d]! + (1 - b2) * grad[d]! * grad[d]!;
            theta[d]! -= (LEARNING_RATE * (m[d]! / (1 - b1 ** it))) / (Math.sqrt(v[d]! / (1 - b2 ** it)) + 1e-8);
        }
    }
    return { bias: theta[0]!, ruleWeights: theta.slice(1, W0), weights: theta.slice(W0) };
}

/** Weights as int8 times one scale: a quarter of float32's size, and what the filter runs. */
function quantise(model: Trained) {
    const scale = Math.max(...model.weights.map(Math.abs)) / 127 || 1;
    const q = Int8Array.from(model.weights, (w) => Math.round(w / scale));
    return { scale, base64: Buffer.from(q.buffer).toString("base64") };
}

const foldOf = (e: CorpusEntry) => createHash("sha256").update(FOLD_SALT).update(e.group).digest().readUInt32BE(0) % FOLDS;

/** Lowest threshold whose false refusal rate on `benignScores` is at most `rate`. */
function thresholdFor(benignScores: number[], rate: number): number {
    const sorted = [...benignScores].sort((a, b) => b - a);
    const allowed = Math.floor(rate * sorted.length);
    // Refuse at >= threshold: put it just above the (allowed+1)-th highest benign score.
    return sorted[allowed]! + 1e-6;
}

const round = (x: number) => Number(x.toFixed(4));

function main(): void {
    const corpus = readCorpus();
    const training = corpus.entries.filter((e) => !isHeldOut(e));
    const examples = training.map(example);

    // Out-of-fold scores (raw log-odds of a model that did not see the example's group).
    const oof = new Map<CorpusEntry, number>();
    for (let f = 0; f < FOLDS; f++) {
        const model = train(examples.filter((ex) => foldOf(ex.entry) !== f));
        for (const ex of examples) {
            if (foldOf(ex.entry) !== f) continue;
            let z = model.bias + (ex.rule >= 0 ? model.ruleWeights[ex.rule]! : 0);
            for (let k = 0; k < ex.index.length; k++) z += model.weights[ex.index[k]!]! * ex.value[k]!;
            oof.set(ex.entry, z);
        }
    }
    const threshold = thresholdFor(
        training.filter((e) => e.label === "benign").map((e) => oof.get(e)!),
        TARGET_FOLD_FPR,
    );
    const crossValidation = figures(training, (e) => oof.get(e)! >= threshold);

    const final = train(examples);
    const { scale, base64 } = quantise(final);
    const doc = {
        format: MODEL_FORMAT,
        featureBits: FEATURE_BITS,
        window: WINDOW,
        corpusSha256: corpus.sha256,
        threshold: round(threshold),
        bias: final.bias,
        ruleWeights: Object.fromEntries(RULE_IDS.map((id, i) => [id, final.ruleWeights[i]!])),
        weightScale: scale,
        weightsInt8Base64: base64,
        training: {
            note: `trained by scripts/train-jailbreak.ts on the ${training.length} training prompts; held-out prompts are never read`,
            hyperparameters: { iterations: ITERATIONS, learningRate: LEARNING_RATE, l2: L2, folds: FOLDS, foldSalt: FOLD_SALT, targetFoldFalsePositiveRate: TARGET_FOLD_FPR },
            crossValidation: {},
            trainingSplit: {},
        },
    };
    // Training-split figures of the model as shipped (quantised, threshold applied, rules included).
    const shipped = loadModel(doc);
    const trainingSplit = figures(training, (e) => {
        const t = normalise(e.text);
        return score(shipped, t, matchRules(t)) >= shipped.threshold;
    });
    const rounded = (f: ReturnType<typeof figures>) => ({ ...f, precision: round(f.precision), recall: round(f.recall), falsePositiveRate: round(f.falsePositiveRate) });
    doc.training.crossValidation = rounded(crossValidation);
    doc.training.trainingSplit = rounded(trainingSplit);
    writeFileSync(MODEL_PATH, JSON.stringify(doc, null, 1) + "\n");
    process.stdout.write(
        `wrote ${MODEL_PATH} (corpus ${corpus.sha256.slice(0, 12)}…, ${training.length} training prompts, threshold ${round(threshold)})\n` +
            `cross-validation: ${JSON.stringify(doc.training.crossValidation)}\ntraining split: ${JSON.stringify(doc.training.trainingSplit)}\n` +
            `rule weights: ${JSON.stringify(doc.ruleWeights)}\n`,
    );
}

main();
