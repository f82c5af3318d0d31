/**
 * Every script answers `--help` with its usage and exit 0 (no run starts), and a script that
 * starts processes stops all of them and removes its temp dir on SIGINT/SIGTERM: the known case
 * was `soak:nodes` leaving four nginx masters and /tmp/zto-soak-* behind after Ctrl-C.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";

const ROOT = join(__dirname, "..", "..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };

/** npm script name -> the scripts/*.ts file it runs. */
const SCRIPTS = Object.entries(pkg.scripts).flatMap(([name, cmd]) => {
    const m = /(scripts\/[\w-]+\.ts)/.exec(cmd);
    return m ? [{ name, file: m[1] }] : [];
});

/** Pids of live processes whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
    return readdirSync("/proc")
        .filter((d) => /^\d+$/.test(d))
        .filter((d) => {
            try {
                return readFileSync(`/proc/${d}/cmdline`, "utf8").includes(needle);
            } catch {
                return false;
            }
        })
        .map(Number);
}

describe("--help on every script", () => {
    test("the list covers the scripts of package.json", () => {
        for (const n of ["plan", "policy:check", "sandbox", "device:add", "device:revoke", "device:bundle", "bench:plan", "bench:filter", "bench:gateway", "graph:snapshot", "soak:nodes", "prerequisites"]) {
            assert.ok(SCRIPTS.some((s) => s.name === n), n);
        }
    });
    for (const s of SCRIPTS) {
        test(`npm run ${s.name} -- --help: usage on stdout, exit 0, nothing run`, () => {
            const started = Date.now();
            const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, s.file), "--help"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
            assert.equal(r.status, 0, `${s.name}: exit ${r.status}, stderr: ${r.stderr}`);
            assert.match(r.stdout, /^usage: /, s.name);
            // A full run of the benches takes minutes; usage is printed before any work.
            assert.ok(Date.now() - started < 30_000, `${s.name} took ${Date.now() - started} ms`);
        });
    }
});

describe("soak:nodes on a signal", () => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
        test(`${signal} mid-run: every process it started is gone, its temp dir removed, exit 128+n`, async () => {
            const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "scripts/soak-nodes.ts"), "--duration-s", "120", "--concurrency", "1"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
            let stderr = "";
            child.stderr.on("data", (b) => (stderr += b));
            const exited = new Promise<{ code: number | null }>((done) => child.once("exit", (code) => done({ code })));
            const stateDir = await new Promise<string>((done, fail) => {
                const timer = setTimeout(() => fail(new Error(`soak:nodes did not start within 90 s; stderr:\n${stderr}`)), 90_000);
                child.stderr.on("data", () => {
                    const m = /running for \d+ s \(state (\S+)\)/.exec(stderr);
                    if (m) {
                        clearTimeout(timer);
                        done(m[1]);
                    }
                });
                void exited.then(() => fail(new Error(`soak:nodes exited before it started; stderr:\n${stderr}`)));
            });
            try {
                const started = processesMentioning(stateDir);
                // Gateway nginx, three enclave nginx, three stub Ollamas at least.
                assert.ok(started.length >= 4, `only ${started.length} processes mention ${stateDir}`);
                child.kill(signal);
                const { code } = await exited;
                assert.equal(code, signal === "SIGINT" ? 130 : 143, stderr);
                assert.deepEqual(processesMentioning(stateDir), [], "processes left running");
                assert.equal(existsSync(stateDir), false, "temp dir left behind");
                assert.match(stderr, new RegExp(`soak:nodes: ${signal}: stopping what was started`));
            } finally {
                if (child.exitCode === null) child.kill("SIGKILL");
                for (const pid of processesMentioning(stateDir)) process.kill(pid, "SIGKILL");
            }
        });
    }
});
