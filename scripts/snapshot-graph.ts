/**
 * Print the graph snapshot (scripts/lib/graph-snapshot.ts) of each given stack file as JSON:
 * `{ "<stack file name>": [...] }`. Used to record test/fixtures/one-node-graphs.json.
 *
 *   tsx scripts/snapshot-graph.ts Pulumi.dev.yaml Pulumi.prod.yaml
 */
import * as path from "node:path";
import { readStackFile } from "../components/stack-file";
import { graphSnapshot } from "./lib/graph-snapshot";
import { exitWithUsageIfAsked, fromUserCwd } from "./lib/cli";
import { runProgramUnderMocks } from "./lib/mock-program";

const USAGE = `usage: npm run graph:snapshot -- <Pulumi.<stack>.yaml>...
  Prints { "<stack file name>": <graph snapshot> } as JSON for each stack file (paths are relative
  to where you ran the command); used to record test/fixtures/one-node-graphs.json.`;

async function main(files: string[]): Promise<void> {
    exitWithUsageIfAsked(files, USAGE);
    if (!files.length) throw new Error(`give at least one stack file\n${USAGE}`);
    const out: Record<string, unknown> = {};
    for (const f of files) {
        const r = await runProgramUnderMocks(readStackFile(fromUserCwd(f)));
        if (!r.ok) throw new Error(`${f}: config rejected: ${JSON.stringify(r.problems)}`);
        out[path.basename(f)] = graphSnapshot(r.resources);
    }
    process.stdout.write(JSON.stringify(out, null, 1) + "\n");
}

main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
});
