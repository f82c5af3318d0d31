/**
 * `npm run eval:filter`: precision, recall and false refusal rate of the jailbreak check on the
 * held-out part of test/fixtures/jailbreak/corpus.jsonl, overall and per family, for the check as
 * the filter runs it (`findJailbreak`: template tokens, phrase rules and the model) and, for
 * comparison, for the phrase rules and template tokens alone. Exits 1 when the model was trained
 * from another corpus or a held-out target (issue 14) is missed.
 */
import { CLASSIFIER_RULE, findJailbreak, JAILBREAK_MODEL } from "../filter/src/jailbreak";
import { normalise, ruleVerdict } from "../filter/src/jailbreak-rules";
import { evaluate, isHeldOut, readCorpus, TARGETS, type Figures } from "./lib/jailbreak-corpus";
import { exitWithUsageIfAsked } from "./lib/cli";

const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(6);

function row(name: string, f: Figures, rulesOnly: Figures): string {
    // A family holds one label: recall is meaningless for benign ones, false refusals for attacks.
    const dash = "-".padStart(6);
    const attack = f.attacks > 0;
    const benign = f.benign > 0;
    const counts = [attack ? `${f.truePositives}/${f.attacks} attacks refused` : "", benign ? `${f.falsePositives}/${f.benign} benign refused` : ""].filter(Boolean).join(", ");
    const cells = [benign && attack ? pct(f.precision) : dash, attack ? pct(f.recall) : dash, benign ? pct(f.falsePositiveRate) : dash, attack ? pct(rulesOnly.recall) : dash, benign ? pct(rulesOnly.falsePositiveRate) : dash];
    return `${name.padEnd(34)} ${String(f.attacks + f.benign).padStart(5)}  ${cells.slice(0, 3).join("  ")}   ${cells.slice(3).join("  ")}   ${counts}`;
}

function main(): number {
    const corpus = readCorpus();
    const heldOut = corpus.entries.filter(isHeldOut);
    const filter = evaluate(heldOut, (text) => findJailbreak(text) !== undefined);
    const rules = evaluate(heldOut, (text) => ruleVerdict(normalise(text)).refuse !== undefined);
    const modelOnly = evaluate(heldOut, (text) => findJailbreak(text) === CLASSIFIER_RULE).overall;
    const lines = [
        `held-out split of ${corpus.entries.length} prompts: ${filter.overall.attacks} attacks, ${filter.overall.benign} benign (corpus sha256 ${corpus.sha256.slice(0, 16)}…)`,
        "",
        `${"".padEnd(34)} ${"n".padStart(5)}  ${"prec".padStart(6)}  ${"recall".padStart(6)}  ${"FPR".padStart(6)}   ${"rules-only".padStart(14)}`,
        `${"family".padEnd(34)} ${"".padStart(5)}  ${"".padStart(6)}  ${"".padStart(6)}  ${"".padStart(6)}   ${"recall".padStart(6)}  ${"FPR".padStart(6)}`,
        row("overall", filter.overall, rules.overall),
        ...Object.entries(filter.byFamily).map(([family, f]) => row(family, f, rules.byFamily[family]!)),
        "",
        `false refusals: ${rules.overall.falsePositives} by the phrase rules and template tokens (which refuse outright; a match quoted in a question about it goes to the model instead), ${modelOnly.falsePositives} more by the model (${pct(modelOnly.falsePositiveRate).trim()} of benign prompts)`,
        "",
    ];
    const problems: string[] = [];
    if (JAILBREAK_MODEL.corpusSha256 !== corpus.sha256) problems.push(`the model was trained from corpus ${JAILBREAK_MODEL.corpusSha256.slice(0, 16)}…, not this one: run npm run train:filter`);
    if (filter.overall.recall < TARGETS.minRecall) problems.push(`recall ${pct(filter.overall.recall).trim()} is below the target ${pct(TARGETS.minRecall).trim()}`);
    if (filter.overall.falsePositiveRate > TARGETS.maxFalsePositiveRate) problems.push(`false refusals ${pct(filter.overall.falsePositiveRate).trim()} exceed the target ${pct(TARGETS.maxFalsePositiveRate).trim()}`);
    lines.push(problems.length ? problems.map((p) => `FAIL: ${p}`).join("\n") : `targets hold: recall >= ${pct(TARGETS.minRecall).trim()}, false refusals <= ${pct(TARGETS.maxFalsePositiveRate).trim()}`);
    process.stdout.write(lines.join("\n") + "\n");
    return problems.length ? 1 : 0;
}

const USAGE = `usage: npm run eval:filter
  Prints precision, recall and false refusal rate of the jailbreak check on the held-out split
  of test/fixtures/jailbreak/corpus.jsonl, overall and per family, next to the phrase rules alone.
  Exits 1 when a target of issue 14 is missed or the model was trained from another corpus.
  Takes no options.`;

exitWithUsageIfAsked(process.argv.slice(2), USAGE);
process.exitCode = main();
