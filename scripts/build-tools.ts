/**
 * npm run tools:build [-- <name>...]: builds the pinned oauth2-proxy and Ollama from source
 * (Go module proxy) into the tools folder. A version already built is skipped, so a warm cache
 * costs nothing. Prints how long each build took.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import * as path from "node:path";
import { TOOLS, toolPath, toolsDir, type GoTool, type ToolName } from "./lib/tools";

const USAGE = "usage: npm run tools:build [-- oauth2Proxy|ollama ...]   (default: all)";

class BuildError extends Error {}

/** Include folders for the headers the module zip lacks (see GoTool.headers). */
function headerIncludeDirs(tool: GoTool): string[] {
    const dirs: string[] = [];
    for (const h of tool.headers ?? []) {
        if (existsSync(path.join("/usr/include", h.include))) continue;
        if (h.pypiSdist) {
            const [name, version] = h.pypiSdist.split("==");
            const root = path.join(toolsDir(), "headers", `${name}-${version}`);
            if (!existsSync(root)) {
                const scratch = `${root}.partial`;
                rmSync(scratch, { recursive: true, force: true });
                mkdirSync(scratch, { recursive: true });
                execFileSync("python3", ["-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "-d", scratch, h.pypiSdist], { stdio: ["ignore", "inherit", "inherit"] });
                const archive = readdirSync(scratch).find((f) => f.endsWith(".tar.gz"));
                if (!archive) throw new BuildError(`pip download ${h.pypiSdist} gave no .tar.gz source distribution`);
                execFileSync("tar", ["-xzf", path.join(scratch, archive), "-C", scratch], { stdio: "inherit" });
                rmSync(path.join(scratch, archive));
                renameSync(scratch, root);
            }
            // The sdist unpacks to <name>-<version>/ with the header under its include path.
            const dir = path.join(root, `${name}-${version}`);
            if (!existsSync(path.join(dir, h.include))) throw new BuildError(`${h.pypiSdist} has no ${h.include}`);
            dirs.push(dir);
        } else {
            throw new BuildError(`${tool.binary} needs ${h.include}: apt-get install ${h.debian}`);
        }
    }
    return dirs;
}

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
        const includes = headerIncludeDirs(t).map((d) => `-I${d}`);
        const cppflags = [process.env.CGO_CPPFLAGS ?? "", ...includes].join(" ").trim();
        execFileSync("go", ["install", `-ldflags=-X=${t.versionVariable.name}=${t.versionVariable.value}`, `${t.module}@${t.version}`], {
            stdio: ["ignore", "inherit", "inherit"],
            env: { ...process.env, GOBIN: scratch, CGO_ENABLED: t.cgo ? "1" : "0", GOFLAGS: "-trimpath", ...(cppflags ? { CGO_CPPFLAGS: cppflags } : {}) },
        });
        mkdirSync(path.dirname(target), { recursive: true });
        renameSync(path.join(scratch, t.binary), target);
        rmSync(scratch, { recursive: true, force: true });
        console.log(`tools:build: ${t.binary} ${t.version} built in ${((Date.now() - t0) / 1000).toFixed(0)} s (${target})`);
    }
    return 0;
}

try {
    process.exitCode = main(process.argv.slice(2));
} catch (e) {
    // A failed build or missing prerequisite: one line, no stack trace.
    console.error(`tools:build: ${e instanceof BuildError ? e.message : (e as Error).message.split("\n")[0]}`);
    process.exitCode = 1;
}
