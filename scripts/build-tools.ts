/**
 * npm run tools:build [-- <name>...]: builds the pinned oauth2-proxy and Ollama from source
 * (Go module proxy) into the tools folder. A version already built is skipped, so a warm cache
 * costs nothing. Prints how long each build took.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import * as path from "node:path";
import { TOOLS, toolPath, type ToolName } from "./lib/tools";

const USAGE = "usage: npm run tools:build [-- oauth2Proxy|ollama ...]   (default: all)";

function main(argv: string[]): number {
    if (argv.includes("--help") || argv.includes("-h")) {
        console.log(USAGE);
        return 0;
    }
    const names = (argv.length ? argv : Object.keys(TOOLS)) as ToolName[];
    for (const n of names) {
        if (!(n in TOOLS)) {
            console.error(`tools:build: unknown tool "${n}"; known: ${Object.keys(TOOLS).join(", ")}\n${USAGE}`);
            return 2;
        }
    }
    for (const n of names) {
        const t = TOOLS[n];
        const target = toolPath(n);
        if (existsSync(target)) {
            console.log(`tools:build: ${t.binary} ${t.version} cached (${target}), 0 s`);
            continue;
        }
        // Build into a scratch folder and move the binary in last, so an interrupted build never
        // leaves a file that looks like a finished one.
        const scratch = `${path.dirname(target)}.partial`;
        rmSync(scratch, { recursive: true, force: true });
        mkdirSync(scratch, { recursive: true });
        const t0 = Date.now();
        execFileSync("go", ["install", `${t.module}@${t.version}`], {
            stdio: ["ignore", "inherit", "inherit"],
            env: { ...process.env, GOBIN: scratch, CGO_ENABLED: t.cgo ? "1" : "0", GOFLAGS: "-trimpath" },
        });
        mkdirSync(path.dirname(target), { recursive: true });
        renameSync(path.join(scratch, t.binary), target);
        rmSync(scratch, { recursive: true, force: true });
        console.log(`tools:build: ${t.binary} ${t.version} built in ${((Date.now() - t0) / 1000).toFixed(0)} s (${target})`);
    }
    return 0;
}

process.exitCode = main(process.argv.slice(2));
