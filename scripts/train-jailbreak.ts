/**
 * `npm run train:filter`: trains the jailbreak model from the training part of
 * test/fixtures/jailbreak/corpus.jsonl (never the held-out part) and writes
 * filter/src/jailbreak-model.json with the corpus hash and the training figures.
 *
 * Logistic regression, class-weighted, L2-regularised, full-batch Adam: no random numbers, so
 * the same corpus always gives the same file. The threshold comes from 5-fold cross-validation
 * inside the training part (folds by a salted hash of the group): the highest score at which
 * the rules and the model together still refuse TARGETS.minRecall of the attacks out of fold,
 * whatever false refusal rate follows. Recall comes first because the filter fails closed: a
 * missed jailbreak reaches the model, a false refusal is a visible, audited error. Out-of-fold
 * scores, so the threshold is not fitted to the very prompts the final model memorised.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { normalise, ruleVerdict } from "../filter/src/jailbreak-rules";
import { checkJailbreak, featureScale, forEachFeature, kindOf, LAYOUT, loadModel, MODEL_FORMAT, type FeatureKind } from "../filter/src/jailbreak-score";
import { evaluate, figures, isHeldOut, readCorpus, TARGETS, thresholdForRecall, type CorpusEntry } from "./lib/jailbreak-corpus";
import { exitWithUsageIfAsked } from "./lib/cli";

export const MODEL_PATH = join(__dirname, "..", "filter", "src", "jailbreak-model.json");

/** Distinct features per scoring window: several hundred characters, longer than almost every corpus prompt. */
const WINDOW = 2048;
const ITERATIONS = 250;
const LEARNING_RATE = 0.1;
/**
 * L2 strength per feature kind. Concepts are shrunk least and n-grams most: with a few hundred
 * training prompts the model then leans on the few general concepts rather than on the many
 * n-grams that only fit the phrasings it saw.
 */
const L2: Record<FeatureKind, number> = { ngram: 1e-5, word: 1e-6, concept: 1e-7 };
const FOLDS = 5;
const FOLD_SALT = "zto-jailbreak-folds-1";
/** `--fold-salt`: another fold assignment, to tell a change from fold-to-fold noise (cross-validation only). */
let foldSalt = FOLD_SALT;
/** Out-of-fold recall of the rules and the model together that the threshold is chosen for: the issue's target. */
const TARGET_FOLD_RECALL = TARGETS.minRecall;

interface Example {
    readonly entry: CorpusEntry;
    /** Distinct features of the text. */
    readonly index: Int32Array;
    /** The value every feature has (the window scale of a text of this many features). */
    readonly value: number;
    /** True when a template token or phrase rule refuses the text whatever the model says. */
    readonly ruled: boolean;
    /** True when a phrase rule matched a text that asks about something, so the model decides. */
    readonly handed: boolean;
    readonly y: 0 | 1;
}

function example(entry: CorpusEntry): Example {
    const t = normalise(entry.text);
    const verdict = ruleVerdict(t);
    const seen = new Set<number>();
    // Each feature once per text, as the filter counts it once per block.
    forEachFeature(
        t,
        (features, length) => {
            for (let i = 0; i < length; i++) seen.add(features[i]!);
        },
        verdict.ruleFeature,
    );
    return { entry, index: Int32Array.from(seen), value: featureScale(seen.size), ruled: verdict.refuse !== undefined, handed: verdict.ruleFeature >= 0, y: entry.label === "attack" ? 1 : 0 };
}

interface Trained {
    bias: number;
    weights: Float64Array;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const L2_BY_FEATURE = Float64Array.from({ length: LAYOUT.size }, (_, f) => L2[kindOf(f)]);

const raw = (model: Trained, ex: Example) => {
    let z = 0;
    for (let k = 0; k < ex.index.length; k++) z += model.weights[ex.index[k]!]!;
    return model.bias + z * ex.value;
};

function train(examples: readonly Example[]): Trained {
    const attacks = examples.filter((e) => e.y === 1).length;
    // Each class carries half the loss, whatever its size.
    const classWeight = [examples.length / (2 * (examples.length - attacks)), examples.length / (2 * attacks)];
    const dims = 1 + LAYOUT.size; // bias, then one weight per feature
    const theta = new Float64Array(dims);
    const m = new Float64Array(dims);
    const v = new Float64Array(dims);
    const grad = new Float64Array(dims);
    const b1 = 0.9;
    const b2 = 0.999;
    for (let it = 1; it <= ITERATIONS; it++) {
        grad.fill(0);
        for (const ex of examples) {
            let z = 0;
            for (let k = 0; k < ex.index.length; k++) z += theta[1 + ex.index[k]!]!;
            z = theta[0]! + z * ex.value;
            const g = (classWeight[ex.y]! * (sigmoid(z) - ex.y)) / examples.length;
            grad[0]! += g;
            const gv = g * ex.value;
            for (let k = 0; k < ex.index.length; k++) grad[1 + ex.index[k]!]! += gv;
        }
        // The bias is not shrunk.
        for (let d = 1; d < dims; d++) grad[d]! += L2_BY_FEATURE[d - 1]! * theta[d]!;
        for (let d = 0; d < dims; d++) {
            m[d] = b1 * m[d]! + (1 - b1) * grad[d]!;
            v[d] = b2 * v[d]! + (1 - b2) * grad[d]! * grad[d]!;
            theta[d]! -= (LEARNING_RATE * (m[d]! / (1 - b1 ** it))) / (Math.sqrt(v[d]! / (1 - b2 ** it)) + 1e-8);
        }
    }
    return { bias: theta[0]!, weights: theta.slice(1) };
}

/** Weights as int8 times one scale: a quarter of float32's size, and what the filter runs. */
function quantise(model: Trained) {
    const scale = Math.max(...model.weights.map(Math.abs)) / 127 || 1;
    const q = Int8Array.from(model.weights, (w) => Math.round(w / scale));
    return { scale, base64: Buffer.from(q.buffer).toString("base64") };
}

const foldOf = (e: CorpusEntry) => createHash("sha256").update(foldSalt).update(e.group).digest().readUInt32BE(0) % FOLDS;

const round = (x: number) => Number(x.toFixed(4));

/** Out-of-fold figures per family, and with `listErrors` every training prompt the folds got wrong. */
function reportFolds(training: readonly CorpusEntry[], refused: (e: CorpusEntry) => boolean, listErrors: boolean): string {
    const { byFamily } = evaluate(training, (text) => refused(training.find((e) => e.text === text)!));
    const lines = Object.entries(byFamily).map(([family, f]) => `  ${family.padEnd(32)} ${f.attacks ? `recall ${(100 * f.recall).toFixed(1)}% of ${f.attacks}` : `false refusals ${(100 * f.falsePositiveRate).toFixed(1)}% of ${f.benign}`}`);
    if (listErrors) for (const e of training) if (refused(e) !== (e.label === "attack")) lines.push(`  ${e.label === "attack" ? "missed" : "refused"} ${e.family}: ${JSON.stringify(e.text.slice(0, 160))}`);
    return lines.join("\n") + "\n";
}

function main(argv: readonly string[]): void {
    const corpus = readCorpus();
    const training = corpus.entries.filter((e) => !isHeldOut(e));
    const examples = training.map(example);

    // Out-of-fold scores (raw log-odds of a model that did not see the example's group).
    const oof = new Map<CorpusEntry, number>();
    for (let f = 0; f < FOLDS; f++) {
        const model = train(examples.filter((ex) => foldOf(ex.entry) !== f));
        for (const ex of examples) if (foldOf(ex.entry) === f) oof.set(ex.entry, raw(model, ex));
    }
    const attacks = examples.filter((ex) => ex.y === 1).map((ex) => ({ ruled: ex.ruled, score: oof.get(ex.entry)! }));
    const threshold = thresholdForRecall(attacks, TARGET_FOLD_RECALL);
    const ruled = new Set(examples.filter((ex) => ex.ruled).map((ex) => ex.entry));
    const refusedAt = (t: number) => (e: CorpusEntry) => ruled.has(e) || oof.get(e)! >= t;
    const crossValidation = figures(training, refusedAt(threshold));
    if (argv.includes("--folds-only")) {
        // The trade-off around the chosen point: false refusals the same rule gives for other recall targets.
        const curve = [0.8, 0.85, TARGET_FOLD_RECALL, 0.95].map((recall) => {
            const f = figures(training, refusedAt(thresholdForRecall(attacks, recall)));
            return `recall >= ${(100 * recall).toFixed(0)}%: recall ${(100 * f.recall).toFixed(1)}%, false refusals ${(100 * f.falsePositiveRate).toFixed(2)}% (${f.falsePositives} of ${f.benign})`;
        });
        // Rule matches in texts that ask about something are the model's to decide: how it decides them.
        const handed = (label: 0 | 1) => examples.filter((ex) => ex.handed && ex.y === label);
        const decided = (label: 0 | 1) => `${handed(label).filter((ex) => oof.get(ex.entry)! >= threshold).length} of ${handed(label).length}`;
        curve.push(`rule matches the model decided: ${decided(1)} attacks refused, ${decided(0)} benign refused`);
        process.stdout.write(`${curve.join("\n")}\nthreshold ${threshold}\ncross-validation: ${JSON.stringify(crossValidation)}\n${reportFolds(training, refusedAt(threshold), argv.includes("--errors"))}`);
        return;
    }

    const final = train(examples);
    const { scale, base64 } = quantise(final);
    const doc = {
        format: MODEL_FORMAT,
        features: LAYOUT.size,
        window: WINDOW,
        corpusSha256: corpus.sha256,
        threshold,
        bias: final.bias,
        weightScale: scale,
        weightsInt8Base64: base64,
        training: {
            note: `trained by scripts/train-jailbreak.ts on the ${training.length} training prompts; held-out prompts are never read`,
            hyperparameters: { iterations: ITERATIONS, learningRate: LEARNING_RATE, l2: L2, window: WINDOW, folds: FOLDS, foldSalt: FOLD_SALT, targetFoldRecall: TARGET_FOLD_RECALL },
            crossValidation: {},
            trainingSplit: {},
        },
    };
    // Training-split figures of the model as shipped (quantised, threshold applied, rules included).
    const shipped = loadModel(doc);
    const trainingSplit = figures(training, (e) => checkJailbreak(shipped, e.text) !== undefined);
    const rounded = (f: ReturnType<typeof figures>) => ({ ...f, precision: round(f.precision), recall: round(f.recall), falsePositiveRate: round(f.falsePositiveRate) });
    doc.training.crossValidation = rounded(crossValidation);
    doc.training.trainingSplit = rounded(trainingSplit);
    writeFileSync(MODEL_PATH, JSON.stringify(doc, null, 1) + "\n");
    process.stdout.write(
        `wrote ${MODEL_PATH} (corpus ${corpus.sha256.slice(0, 12)}…, ${training.length} training prompts, threshold ${threshold})\n` +
            `cross-validation: ${JSON.stringify(doc.training.crossValidation)}\ntraining split: ${JSON.stringify(doc.training.trainingSplit)}\n`,
    );
}

const USAGE = `usage: npm run train:filter [-- --folds-only [--errors] [--fold-salt <salt>]]
  Trains the jailbreak model from the training split of test/fixtures/jailbreak/corpus.jsonl
  (never the held-out split) and writes filter/src/jailbreak-model.json with the corpus hash and
  the cross-validation and training figures. Deterministic.
  --folds-only  only the 5-fold cross-validation inside the training split, per family; writes nothing
  --errors      with --folds-only: also list the training prompts the folds got wrong
  --fold-salt   with --folds-only: assign the folds with this salt instead of ${FOLD_SALT}, to see
                whether a change beats fold-to-fold noise`;

const args = process.argv.slice(2);
exitWithUsageIfAsked(args, USAGE);
const options: string[] = [];
for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--fold-salt" && args[i + 1] !== undefined && args.includes("--folds-only")) foldSalt = args[++i]!;
    else if (a === "--folds-only" || a === "--errors") options.push(a);
    else {
        process.stderr.write(`train-jailbreak: unknown or incomplete option ${a}\n${USAGE}\n`);
        process.exit(2);
    }
}
main(options);
