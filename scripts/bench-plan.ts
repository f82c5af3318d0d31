/**
 * `npm run bench:plan`: wall time of `npm run --silent plan -- --json` (fresh processes, exactly
 * as CI runs it) for stacks with 10, 100 and 1,000 enrolled devices. The stacks are the
 * production example (Entra, Tailscale with a managed ACL, pinned images) with generated
 * devices, written to a temp dir. Prints one JSON document; target: 1,000 devices in under 10 s. Next to the wall time it
 * prints the child's CPU time and the load average, because on a shared 2-core machine the wall
 * time mostly measures the other processes.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { cleanUpOnSignal, exitWithUsageIfAsked } from "./lib/cli";

const DEVICE_COUNTS = [10, 100, 1000];
const TARGET_SECONDS_AT_1000 = 10;
const ROOT = join(__dirname, "..");

/** The production example with `count` generated devices and a managed ACL. */
export function benchStackYaml(count: number): string {
    const doc = parse(readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8"));
    doc.config["zero-trust-ollama:devices"] = Array.from({ length: count }, (_, i) => ({
        name: `device-${String(i).padStart(4, "0")}`,
        owner: `user${i}@corp.example.com`,
        tailscaleDeviceId: `nBench${String(i).padStart(6, "0")}CNTRL`,
    }));
    doc.config["zero-trust-ollama:tailscale"] = { ...doc.config["zero-trust-ollama:tailscale"], manageAcl: true };
    return stringify(doc);
}

/** CPU seconds (user + system) of all waited-for children so far; Linux only, else undefined. */
function childrenCpuSeconds(): number | undefined {
    try {
        // /proc/self/stat: the fields after the ")" that ends the command name; cutime and cstime are 16 and 17.
        const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ");
        const ticksPerSecond = 100;
        return (Number(fields[13]) + Number(fields[14])) / ticksPerSecond;
    } catch {
        return undefined;
    }
}

const round = (x: number) => Math.round(x * 1000) / 1000;

let benchDir: string | undefined;
function removeBenchDir(): void {
    if (benchDir) rmSync(benchDir, { recursive: true, force: true });
}

function main(): void {
    const dir = (benchDir = mkdtempSync(join(tmpdir(), "zto-bench-plan-")));
    try {
        const runs = DEVICE_COUNTS.map((devices) => {
            const stackFile = join(dir, `Pulumi.bench${devices}.yaml`);
            writeFileSync(stackFile, benchStackYaml(devices));
            const cpuBefore = childrenCpuSeconds();
            const started = process.hrtime.bigint();
            // Exactly what CI runs (the npm script carries the Node flags plan is tuned with).
            const r = spawnSync("npm", ["run", "--silent", "plan", "--", "--stack", stackFile, "--json"], { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 30 });
            const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
            const cpuAfter = childrenCpuSeconds();
            // Exit 1 (a mandatory violation) is a policy result, not a failed run.
            if (r.status !== 0 && r.status !== 1) throw new Error(`plan exited ${r.status} for ${devices} devices: ${r.stderr.trim()}`);
            const out = JSON.parse(r.stdout) as { resources: unknown[]; violations: unknown[] };
            return { devices, resources: out.resources.length, violations: out.violations.length, exitCode: r.status, wallSeconds: round(wallSeconds), cpuSeconds: cpuBefore === undefined || cpuAfter === undefined ? null : round(cpuAfter - cpuBefore), loadAverage1m: round(loadavg()[0]) };
        });
        const at1000 = runs.find((r) => r.devices === 1000)!;
        process.stdout.write(JSON.stringify({ benchmark: "plan", cores: cpus().length, runs, targetSecondsAt1000: TARGET_SECONDS_AT_1000, met: at1000.wallSeconds < TARGET_SECONDS_AT_1000 }, null, 2) + "\n");
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

const USAGE = `usage: npm run bench:plan
  Times \`npm run plan -- --json\` for the production example with 10, 100 and 1,000 devices and
  prints one JSON document (target: 1,000 devices in under ${TARGET_SECONDS_AT_1000} s). Takes no options.`;

if (require.main === module) {
    exitWithUsageIfAsked(process.argv.slice(2), USAGE);
    // Ctrl-C reaches the plan child too (same process group); the temp dir goes either way.
    cleanUpOnSignal("bench:plan", removeBenchDir);
    try {
        main();
    } catch (e) {
        process.stderr.write(`bench:plan: ${(e as Error).message}\n`);
        process.exitCode = 1;
    }
}
