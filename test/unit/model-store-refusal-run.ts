/**
 * Child process of model-store-program.test.ts: runs the dev stack under mocks with a probe that
 * reports a plain ext4 filesystem for the model store (argument `model-store`) or for the Docker
 * volumes (argument `volumes`), and prints what was registered and which errors ended the run. A
 * child, because the refusal ends the program the way it ends `pulumi up`: an unhandled error.
 */
import { readFileSync } from "node:fs";
import { parseStackFile } from "../../components/stack-file";
import { MOCK_LUKS_PROBE_OUTPUT } from "../../scripts/lib/mock-outputs";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";

const plain = JSON.stringify({
    ...JSON.parse(MOCK_LUKS_PROBE_OUTPUT),
    mountinfo: "812 1 259:2 /srv/encrypted/ollama /store ro - ext4 /dev/nvme0n1p2 rw\n",
    blockDevices: [{ kname: "nvme0n1p2", majMin: "259:2", slaves: [] }],
});
const errors: string[] = [];
let resources: readonly RecordedResource[] = [];
const report = () => {
    // Exit only once the line is flushed: a pipe takes 64 KiB at a time.
    process.stdout.write(JSON.stringify({ registered: resources.map((r) => r.name), errors }) + "\n", () => process.exit(0));
};
process.on("unhandledRejection", (e) => errors.push(e instanceof Error ? e.message : String(e)));
process.on("uncaughtException", (e) => errors.push(e.message));
const file = parseStackFile(readFileSync("Pulumi.dev.yaml", "utf8"), "Pulumi.dev.yaml");
const refused = process.argv[2] === "volumes" ? { volumes: plain } : { modelStore: plain };
const run = runProgramUnderMocks(file, { stack: "dev", storeProbe: refused, onRegistered: (rs) => (resources = rs) });
run.then((r) => (resources = r.resources), (e: Error) => errors.push(e.message)).finally(() => setTimeout(report, 500));
// A refused store leaves the run unsettled (Ollama's inputs never resolve): report when the loop drains.
process.on("beforeExit", report);
