/**
 * Print the graph snapshot (scripts/lib/graph-snapshot.ts) of each given stack file as JSON:
 * `{ "<stack file name>": [...] }`. Used to record test/fixtures/one-node-graphs.json.
 *
 *   tsx scripts/snapshot-graph.ts Pulumi.dev.yaml Pulumi.prod.yaml
 */
import * as path from "node:path";
import { readStackFile } from "../components/stack-file";
import { graphSnapshot } from "./lib/graph-snapshot";
import { runProgramUnderMocks } from "./lib/mock-program";

async function main(files: string[]): Promise<void> {
    const out: Record<string, unknown> = {};
    for (const f of files) {
        const r = await runProgramUnderMocks(readStackFile(f));
        if (!r.ok) throw new Error(`${f}: config rejected: ${JSON.stringify(r.problems)}`);
        out[path.basename(f)] = graphSnapshot(r.resources);
    }
    process.stdout.write(JSON.stringify(out, null, 1) + "\n");
}

main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
});
