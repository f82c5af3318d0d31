/**
 * A supervising script killed outright (SIGKILL: no handler runs) leaves no child behind: the
 * sandbox's and the benches' Supervisor hands every child's process group to a watchdog that
 * kills them once the supervisor is gone. Proven on the real CLIs: `npm run sandbox` (nginx
 * master and workers under the gateway's supervisor script, haproxy, the filter's node primary
 * and its cluster workers) and `npm run bench:gateway` (stub Ollama and filter under node, bare
 * and full nginx and haproxy), each checked by pid (and start time, so a reused pid is not
 * taken for a survivor) within a bounded wait.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { REPO_ROOT, startSandbox } from "./harness";

interface Proc {
    readonly pid: number;
    readonly startTime: string;
    readonly command: string;
}

/** Fields after the parenthesised command of /proc/<pid>/stat (state is [0], ppid [1], starttime [19]). */
function statFields(pid: number): string[] | undefined {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    } catch {
        return undefined;
    }
}

/** Every live descendant of `root` (children, grandchildren, ...), with what it runs. */
function descendants(root: number): Proc[] {
    const children = new Map<number, number[]>();
    for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        const f = statFields(Number(entry));
        if (!f || f[0] === "Z") continue;
        const ppid = Number(f[1]);
        children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    }
    const found: Proc[] = [];
    const queue = [...(children.get(root) ?? [])];
    while (queue.length) {
        const pid = queue.shift()!;
        const f = statFields(pid);
        if (!f) continue;
        let command = "";
        try {
            command = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
        } catch {
            continue;
        }
        found.push({ pid, startTime: f[19], command });
        queue.push(...(children.get(pid) ?? []));
    }
    return found;
}

/** Still running: the same pid with the same start time, not a zombie. */
const alive = (p: Proc) => {
    const f = statFields(p.pid);
    return f !== undefined && f[19] === p.startTime && f[0] !== "Z";
};

/** Wait (a bound, not a measurement: the watchdog acts at once) until none of `procs` runs. */
async function survivorsAfter(procs: readonly Proc[], boundMs = 20_000): Promise<Proc[]> {
    const deadline = Date.now() + boundMs;
    for (;;) {
        const left = procs.filter(alive);
        if (!left.length || Date.now() > deadline) return left;
        await new Promise((r) => setTimeout(r, 100));
    }
}

/** Poll `root`'s descendants until `enough` says the tree is complete (bounded). */
async function treeOnceComplete(root: number, enough: (tree: Proc[]) => boolean, boundMs: number, what: () => string): Promise<Proc[]> {
    const deadline = Date.now() + boundMs;
    for (;;) {
        const tree = descendants(root);
        if (enough(tree)) return tree;
        if (Date.now() > deadline) throw new Error(`the process tree never got complete within ${boundMs} ms: ${tree.map((p) => p.command).join(" | ")}\n${what()}`);
        await new Promise((r) => setTimeout(r, 200));
    }
}

const count = (tree: Proc[], re: RegExp) => tree.filter((p) => re.test(p.command)).length;
const kill = (pid: number) => {
    try {
        process.kill(pid, "SIGKILL");
    } catch {
        // gone already
    }
};

describe("a supervisor killed with SIGKILL takes its children along", () => {
    for (const kind of ["nginx", "haproxy"] as const) {
        test(`npm run sandbox (${kind} gateway, filter with workers): every child gone by pid`, { timeout: 180_000 }, async () => {
            const sb = await startSandbox({
                config: { domain: "ollama.test", devices: [{ name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] }], gateway: { kind }, identity: { provider: "none" }, filter: { enabled: true } },
                readyTimeoutMs: 120_000,
            });
            let tree: Proc[] = [];
            try {
                // The gateway's binary with at least one worker, and the filter's primary with its workers.
                tree = await treeOnceComplete(sb.pid, (t) => count(t, new RegExp(`^${kind}[: ]`)) >= 2 && count(t, /filter\/src\/main\.ts/) >= 2, 60_000, sb.stderr);
                kill(sb.pid);
                await sb.exited;
                const left = await survivorsAfter(tree);
                assert.deepEqual(left, [], `left running after the sandbox was SIGKILLed: ${JSON.stringify(left)}`);
            } finally {
                for (const p of tree.filter(alive)) kill(p.pid);
            }
        });
    }

    test("npm run bench:gateway mid-run (node stub and filter, nginx and haproxy with workers): every child gone by pid", { timeout: 240_000 }, async () => {
        const bench = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "scripts/bench-gateway.ts"), "--kinds", "nginx,haproxy", "--streams", "off", "--seconds", "120", "--concurrency", "1"], { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        bench.stderr.on("data", (b) => (stderr += b));
        const exited = new Promise<void>((done) => bench.once("exit", () => done()));
        let tree: Proc[] = [];
        try {
            // Once the filtered gateways run, every kind of child is there: node (stub, filter with
            // workers) and nginx and haproxy masters with workers (bare and full).
            const nginxHaproxy = /^(nginx|haproxy)[: ]/;
            tree = await treeOnceComplete(bench.pid!, (t) => count(t, /--serve-stub-ollama/) >= 1 && count(t, /filter-\d+\.js/) >= 4 && count(t, nginxHaproxy) >= 10, 180_000, () => stderr);
            kill(bench.pid!);
            await exited;
            const left = await survivorsAfter(tree);
            assert.deepEqual(left, [], `left running after the bench was SIGKILLed: ${JSON.stringify(left)}`);
        } finally {
            kill(bench.pid!);
            for (const p of tree.filter(alive)) kill(p.pid);
        }
    });
});
