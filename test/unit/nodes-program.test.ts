import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { readStackFile } from "../../components/stack-file";
import { graphSnapshot } from "../../scripts/lib/graph-snapshot";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";

const FIXTURE = path.join(__dirname, "../fixtures/one-node-graphs.json");

describe("one-node stacks (no ollama.nodes)", () => {
    // The fixture was recorded from the program before the node pool existed (scripts/snapshot-graph.ts
    // run in a checkout of that commit): same URNs, parents and inputs mean `pulumi up` plans no change.
    const before = JSON.parse(readFileSync(FIXTURE, "utf8")) as Record<string, ReturnType<typeof graphSnapshot>>;
    for (const file of ["Pulumi.dev.yaml", "Pulumi.prod.yaml"]) {
        test(`${file}: the graph equals the one recorded before the node pool`, async () => {
            const r = await runProgramUnderMocks(readStackFile(file));
            assert.ok(r.ok, "config accepted");
            const now = graphSnapshot(r.resources);
            assert.deepEqual(now.map((x) => x.urn), before[file].map((x) => x.urn), "same URNs");
            assert.deepEqual(now, before[file], "same parents and inputs");
        });
    }
});
