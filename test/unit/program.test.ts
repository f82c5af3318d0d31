import assert from "node:assert/strict";
import { test } from "node:test";
import { readStackFile } from "../../components/stack-file";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";

test("dev stack builds", async () => {
    const r = await runProgramUnderMocks(readStackFile("Pulumi.dev.yaml"));
    assert.ok(r.ok);
    for (const x of r.resources) console.log(x.type, x.name, x.parent ?? "", x.secretInputs.join(","));
});
