/**
 * The pack as the Pulumi CLI runs it: `policies/index.ts` started as its own process (it serves
 * the analyzer gRPC API on 127.0.0.1 and prints the port), then called over gRPC exactly as the
 * CLI calls it, through the client `plan` and `policy:check` use (scripts/lib/policy-server).
 * Proves the pack loads and is accepted by the CrossGuard server, that broken invariants of the
 * real program's graphs are reported by it (and identically by plan's in-process evaluation),
 * and that the server is always bounded and stopped.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { parseStackFile, readStackFile, type StackFile } from "../../components/stack-file";
import { POLICIES } from "../../policies/all";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";
import { graphFromMockRun, resolvePolicyConfig, type GraphResource, type Violation } from "../../scripts/lib/policy-eval";
import { evaluatePolicies } from "../../scripts/lib/plan-eval";
import { PolicyServer, PolicyServerError } from "../../scripts/lib/policy-server";
import { packServer } from "./harness";

const ROOT = join(__dirname, "..", "..");

test("the pack type-checks on its own tsconfig, as the Pulumi CLI's policy runner compiles it (ts-node, typeCheck on)", () => {
    const r = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "--noEmit", "-p", join(ROOT, "policies", "tsconfig.json")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
});

describe("the pack served by the real CrossGuard server", () => {
    test("it announces every policy of POLICIES, in order, with its enforcement level and description", async () => {
        const info = await (await packServer()).info();
        assert.equal(info.name, "zero-trust-ollama");
        assert.deepEqual(
            info.policies.map((p) => [p.name, p.enforcementLevel, p.description]),
            POLICIES.map((p) => [p.name, p.enforcementLevel, p.description]),
        );
    });

    /** The served analyzer's violations; plan's in-process evaluation must report exactly the same. */
    async function analyze(graph: GraphResource[]): Promise<Violation[]> {
        const served = await (await packServer()).analyze(resolvePolicyConfig(POLICIES), graph);
        assert.deepEqual(await evaluatePolicies(resolvePolicyConfig(POLICIES), graph), served, "plan's in-process evaluation differs from the served analyzer");
        return served;
    }
    const key = (v: Violation) => `${v.policy} | ${v.enforcementLevel} | ${v.urn?.slice(v.urn.lastIndexOf("::") + 2) ?? "(stack)"}`;

    /** The mocked graph of a stack file. */
    async function graphOf(file: StackFile, stack: string): Promise<GraphResource[]> {
        const run = await runProgramUnderMocks(file, { stack });
        assert.ok(run.ok);
        return JSON.parse(JSON.stringify(graphFromMockRun(run.resources))) as GraphResource[];
    }

    function breakIt(graph: GraphResource[], name: string, change: (p: Record<string, any>) => void): void {
        const r = graph.find((x) => x.name === name);
        assert.ok(r, name);
        change(r.inputs);
        change(r.outputs);
    }

    test("dev graph, containers/network/PKI broken: the offline evaluator reports exactly what the analyzer reports", async () => {
        const graph = await graphOf(readStackFile("Pulumi.dev.yaml"), "dev");
        const clean = new Set((await analyze(graph)).map(key));
        breakIt(graph, "ollama-container", (p) => (p.ports = [{ internal: 11434, external: 11434 }]));
        breakIt(graph, "gateway-container", (p) => Object.assign(p, { privileged: true, securityOpts: [] }));
        breakIt(graph, "pki-ca-key", (p) => Object.assign(p, { algorithm: "RSA", rsaBits: 2048 }));
        breakIt(graph, "network-to-ollama", (p) => (p.internal = false));
        const added = [...new Set((await analyze(graph)).map(key))].filter((k) => !clean.has(k)).sort();
        assert.deepEqual(added, DEV_BROKEN);
    });

    test("prod graph with a managed ACL, identity/tailnet/ingress broken: same findings offline and served", async () => {
        const doc = parse(readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8"));
        doc.config["zero-trust-ollama:tailscale"].manageAcl = true;
        const graph = await graphOf(parseStackFile(stringify(doc), "prod (manageAcl)"), "prod");
        // Clean but for the Security Defaults preflight of requireMfa (advisory: offline it cannot read the tenant).
        assert.deepEqual((await analyze(graph)).map((f) => f.policy), ["entra-require-security-defaults-off"], "the unbroken production graph is clean under the real analyzer");
        breakIt(graph, "gateway-container", (p) => (p.ports[0].ip = "0.0.0.0"));
        breakIt(graph, "entra-app", (p) => Object.assign(p, { signInAudience: "AzureADMultipleOrgs", web: { ...p.web, implicitGrant: { accessTokenIssuanceEnabled: true } } }));
        breakIt(graph, "entra-principal", (p) => (p.appRoleAssignmentRequired = false));
        breakIt(graph, "tailnet-acl", (p) => (p.acl = JSON.stringify({ grants: [{ src: ["*"], dst: ["tag:ai-server"], ip: ["*"] }] })));
        breakIt(graph, "oauth2-proxy-cookie-secret", (p) => (p.length = 16));
        // A second ingress-role container on the gateway's Docker host: only the provider tells.
        breakIt(graph, "filter-container", (p) => Object.assign(p, { labels: [{ label: "zero-trust-ollama.role", value: "enclave" }], ports: [{ internal: 8443, external: 11443, ip: "127.0.0.1" }] }));
        const dockerProvider = graph.find((r) => r.type === "pulumi:providers:docker" && r.name === "docker")!.urn;
        for (const r of graph) if (r.name === "filter-container" || r.name === "gateway-container") Object.assign(r, { provider: dockerProvider });
        const found = await analyze(graph);
        assert.deepEqual([...new Set(found.map(key))].sort(), PROD_BROKEN);
        assert.ok(found.some((f) => /publishes on the same Docker host as filter-container/.test(f.message)), "the per-host check ran with the providers the client sends");
    });
});

describe("the server process is bounded and always stopped", () => {
    const tmp = mkdtempSync(join(tmpdir(), "policy-server-"));
    after(() => rmSync(tmp, { recursive: true, force: true }));

    /** A stand-in pack directory whose index.ts runs `body`. */
    function fakePack(name: string, body: string): string {
        const dir = join(tmp, name);
        mkdirSync(dir);
        writeFileSync(join(dir, "index.ts"), `${body}\n`);
        return dir;
    }

    /** Live processes whose working directory is `dir` (the servers started from it). */
    function processesIn(dir: string): number[] {
        return readdirSync("/proc")
            .filter((d) => /^\d+$/.test(d))
            .filter((d) => {
                try {
                    return readlinkSync(`/proc/${d}/cwd`) === dir && alive(Number(d));
                } catch {
                    return false; // ended while being read, or not ours to inspect
                }
            })
            .map(Number);
    }

    /** Running (an exited process waiting to be reaped counts as gone). */
    const alive = (pid: number) => {
        try {
            const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
            return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
        } catch {
            return false;
        }
    };

    /** Polls (bounded, generous for a loaded machine) until `done`; fails with `what` otherwise. */
    async function eventually(what: string, done: () => boolean, boundMs = 60_000): Promise<void> {
        const until = Date.now() + boundMs;
        while (!done()) {
            assert.ok(Date.now() < until, what);
            await new Promise((r) => setTimeout(r, 100));
        }
    }

    test("a server that prints no port within the bound is an error, and its process is killed", async () => {
        const dir = fakePack("silent", "setInterval(() => {}, 1000);");
        const starting = PolicyServer.start(dir, 5_000);
        starting.catch(() => undefined); // asserted below; not unhandled while polling
        await eventually("the silent server never ran (so its stopping proves nothing)", () => processesIn(dir).length > 0, 5_000);
        await assert.rejects(starting, (e: unknown) => e instanceof PolicyServerError && /printed no port within 5 s/.test(e.message));
        await eventually("the silent server was not stopped", () => processesIn(dir).length === 0);
    });

    test("a pack that fails to load is an error quoting its stderr without stack frames", async () => {
        const dir = fakePack("broken", 'console.error("pack broken: no policies"); process.exit(3);');
        await assert.rejects(PolicyServer.start(dir), (e: unknown) => e instanceof PolicyServerError && /exited \(code 3\) before serving: pack broken: no policies$/.test(e.message));
    });

    /** The pid of the running policy server started by `parent` (a child whose command runs index.ts). */
    function serverChildOf(parent: number): number | undefined {
        for (const d of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
            try {
                const stat = readFileSync(`/proc/${d}/stat`, "utf8");
                const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
                if (ppid === parent && readFileSync(`/proc/${d}/cmdline`, "utf8").includes("index.ts")) return Number(d);
            } catch {
                // the process ended while being read
            }
        }
        return undefined;
    }

    for (const [signal, expected] of [["SIGTERM", 128 + 15], ["SIGKILL", null]] as const) {
        test(`policy:check stopped by ${signal} while the server runs: the server goes too`, async () => {
            const cli = spawn(process.execPath, ["--import", "tsx", join(ROOT, "scripts", "policy-check.ts"), "test/fixtures/stack-export-clean.json"], { cwd: ROOT, stdio: "ignore" });
            const exited = new Promise<number | null>((r) => cli.once("exit", (code) => r(code)));
            let server: number | undefined;
            await eventually("policy:check started no policy server", () => (server = serverChildOf(cli.pid!)) !== undefined, 120_000);
            cli.kill(signal);
            assert.equal(await exited, expected);
            await eventually(`the policy server outlived policy:check (${signal})`, () => !alive(server!));
        });
    }
});

// What each broken invariant must raise: policy, level and the broken resource. (Before the
// real analyzer ran plan and policy:check, these tests proved the offline copy agreed with it.)
const DEV_BROKEN = [
    "container-disallow-privileged | mandatory | gateway-container",
    "container-require-no-new-privileges | mandatory | gateway-container",
    "gateway-require-single-ingress | mandatory | ollama-container",
    "ollama-disallow-host-ports | mandatory | ollama-container",
    "ollama-require-internal-network | mandatory | ollama-container",
    "tls-require-strong-keys | mandatory | pki-ca-key",
];
const PROD_BROKEN = [
    "entra-disallow-implicit-grant | mandatory | entra-app",
    "entra-require-assignment | mandatory | entra-principal",
    "entra-require-security-defaults-off | advisory | entra-require-mfa",
    "entra-require-single-tenant | mandatory | entra-app",
    "gateway-require-single-ingress | mandatory | filter-container",
    "gateway-require-single-ingress | mandatory | gateway-container",
    "ollama-require-node-enclave-mtls | mandatory | filter-container",
    "random-require-cookie-secret-length | mandatory | oauth2-proxy-cookie-secret",
    "tailscale-disallow-wildcards | mandatory | tailnet-acl",
    "tailscale-require-acl-tests | mandatory | tailnet-acl",
    "tailscale-restrict-server-access | mandatory | tailnet-acl",
];
