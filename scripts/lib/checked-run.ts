/**
 * The program under mocks with given model-store and volume probe answers, in a child process,
 * reporting what it registered and the errors that ended it. A child, because a refused check
 * ends the program the way it ends `pulumi up`: an unhandled error, with the run never settling
 * (the consumers' inputs never resolve). Used by the mock tests (recorded plain-disk answers) and
 * by the rehearsal (the probes' real output from the engine). Invokes are answered as `plan`
 * answers them (OFFLINE_CALLS), which is what both callers use.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import type { StackFile } from "../../components/stack-file";
import { OFFLINE_CALLS } from "../plan";
import { runProgramUnderMocks, type RecordedResource, type StoreProbeAnswers } from "./mock-program";

export interface CheckedRunRequest {
    readonly file: StackFile;
    /** Stack name (in every URN and container name). */
    readonly stack: string;
    readonly storeProbe: StoreProbeAnswers;
}

export interface CheckedRunReport {
    /** Resource names the program registered before it ended. */
    readonly registered: string[];
    /** The distinct errors that ended the run (each refused check's refusal), in order; [] when it completed. */
    readonly errors: string[];
}

/** Bound for one run on a loaded machine (not a target: a run takes seconds). */
const CHILD_TIMEOUT_MS = 180_000;

export function checkedRun(request: CheckedRunRequest): Promise<CheckedRunReport> {
    return new Promise((resolve, reject) => {
        const child = execFile(process.execPath, ["--import", "tsx", __filename], { encoding: "utf8", timeout: CHILD_TIMEOUT_MS, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
            if (err) return reject(new Error(`the program run with the probes' answers failed: ${err.message}${stderr ? `\n${stderr.slice(-2000)}` : ""}`));
            resolve(JSON.parse(stdout.trim().split("\n").pop()!) as CheckedRunReport);
        });
        child.stdin!.end(JSON.stringify(request));
    });
}

function childMain(): void {
    const request = JSON.parse(readFileSync(0, "utf8")) as CheckedRunRequest;
    const errors: string[] = [];
    let resources: readonly RecordedResource[] = [];
    let reported = false;
    const report = () => {
        if (reported) return;
        reported = true;
        // Exit only once the line is flushed: a pipe takes 64 KiB at a time.
        process.stdout.write(JSON.stringify({ registered: resources.map((r) => r.name), errors } satisfies CheckedRunReport) + "\n", () => process.exit(0));
    };
    // Each resource whose inputs lead to the refused output fails with the same error, wrapped in
    // the path it took ('error serializing property "mounts": ...'): the refusal itself, once.
    const record = (message: string) => {
        const refusal = message.replace(/^(?:error serializing property "[^"]*": )+/, "");
        if (!errors.includes(refusal)) errors.push(refusal);
    };
    process.on("unhandledRejection", (e) => record(e instanceof Error ? e.message : String(e)));
    process.on("uncaughtException", (e) => record(e.message));
    const run = runProgramUnderMocks(request.file, { stack: request.stack, calls: OFFLINE_CALLS, storeProbe: request.storeProbe, onRegistered: (rs) => (resources = rs) });
    run.then((r) => (resources = r.resources), (e: Error) => record(e.message)).finally(() => setTimeout(report, 500));
    // A refused check leaves the run unsettled: report when the event loop drains.
    process.on("beforeExit", report);
}

if (require.main === module) childMain();
