/**
 * `npm run corpus:filter`: rebuilds test/fixtures/jailbreak/corpus.jsonl from the hand-written
 * sources next to it (see scripts/lib/jailbreak-corpus.ts). Retrain (`npm run train:filter`)
 * afterwards: a unit test fails while the model's corpus hash differs from the file.
 */
import { writeFileSync } from "node:fs";
import { buildCorpus, CORPUS_FILE, isHeldOut, serialiseCorpus } from "./lib/jailbreak-corpus";
import { exitWithUsageIfAsked } from "./lib/cli";

const USAGE = `usage: npm run corpus:filter
  Rebuilds test/fixtures/jailbreak/corpus.jsonl from the hand-written sources next to it and
  prints the training and held-out counts. Takes no options. Retrain afterwards (npm run train:filter).`;

exitWithUsageIfAsked(process.argv.slice(2), USAGE);
const entries = buildCorpus();
writeFileSync(CORPUS_FILE, serialiseCorpus(entries));
const count = (label: string, heldOut: boolean) => entries.filter((e) => e.label === label && isHeldOut(e) === heldOut).length;
process.stdout.write(
    `wrote ${CORPUS_FILE}: ${entries.length} prompts; attack ${count("attack", false)} training + ${count("attack", true)} held out; benign ${count("benign", false)} training + ${count("benign", true)} held out\n`,
);
