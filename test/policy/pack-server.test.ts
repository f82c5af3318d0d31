/**
 * The pack as the Pulumi CLI runs it: `policies/index.ts` started as its own process (it serves
 * the analyzer gRPC API on 127.0.0.1 and prints the port), then called over gRPC exactly as the
 * CLI calls it. Proves the pack loads and is accepted by the CrossGuard server, and that the
 * offline evaluator reports the same violations as the real analyzer on the same resources.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { parseStackFile, readStackFile, type StackFile } from "../../components/stack-file";
import { POLICIES } from "../../policies/all";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";
import { evaluatePolicies, graphFromMockRun, resolvePolicyConfig, type GraphResource } from "../../scripts/lib/policy-eval";

// Generated gRPC/protobuf modules (the ones @pulumi/policy's server uses); their typings are not usable here.
const grpc = require("@grpc/grpc-js");
const analyzerRpc = require("@pulumi/pulumi/proto/analyzer_grpc_pb");
const analyzerProto = require("@pulumi/pulumi/proto/analyzer_pb");
const { Struct } = require("google-protobuf/google/protobuf/struct_pb");
const { Empty } = require("google-protobuf/google/protobuf/empty_pb");

const ROOT = join(__dirname, "..", "..");
const LEVEL_NAMES: Record<number, string> = { 0: "advisory", 1: "mandatory", 2: "disabled", 3: "remediate" };

interface Finding {
    policy: string;
    urn: string;
    level: string;
    message: string;
}

/** The provider as the CLI describes it to the analyzer (type, name, URN, state). */
function providerOf(r: GraphResource, graph: GraphResource[]) {
    const p = r.provider ? graph.find((x) => x.urn === r.provider) : undefined;
    if (!p) return undefined;
    const out = new analyzerProto.AnalyzerProviderResource();
    out.setType(p.type);
    out.setUrn(p.urn);
    out.setName(p.name);
    out.setProperties(Struct.fromJavaScript(p.outputs));
    return out;
}

function options(parent?: string) {
    const o = new analyzerProto.AnalyzerResourceOptions();
    o.setProtect(false);
    if (parent) o.setParent(parent);
    return o;
}

test("the pack type-checks on its own tsconfig, as the Pulumi CLI's policy runner compiles it (ts-node, typeCheck on)", () => {
    const r = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "--noEmit", "-p", join(ROOT, "policies", "tsconfig.json")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
});

describe("the pack served by the real CrossGuard server", () => {
    let server: ChildProcess;
    let client: any;
    const rpc = (method: string, req: unknown): Promise<any> => new Promise((resolve, reject) => client[method](req, (err: Error | null, resp: unknown) => (err ? reject(err) : resolve(resp))));

    before(async () => {
        // PolicyPack reads the pack's version from package.json in its working directory, as under the CLI.
        server = spawn(process.execPath, ["--import", "tsx", "index.ts"], { cwd: join(ROOT, "policies"), stdio: ["ignore", "pipe", "pipe"] });
        let stderr = "";
        server.stderr!.on("data", (d) => (stderr += d));
        const port = await new Promise<number>((resolve, reject) => {
            let out = "";
            server.stdout!.on("data", (d) => {
                out += d;
                const m = /^(\d+)\n/.exec(out);
                if (m) resolve(Number(m[1]));
            });
            server.on("exit", (code) => reject(new Error(`policy pack exited ${code}: ${stderr}`)));
        });
        client = new analyzerRpc.AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    });
    after(() => {
        client?.close();
        server?.kill();
    });

    test("it announces every policy with its enforcement level and config schema", async () => {
        const info = await rpc("getAnalyzerInfo", new Empty());
        assert.equal(info.getName(), "zero-trust-ollama");
        const served = info.getPoliciesList().map((p: any) => [p.getName(), LEVEL_NAMES[p.getEnforcementlevel()]]);
        assert.deepEqual(served, POLICIES.map((p) => [p.name, p.enforcementLevel]));
    });

    /** Every violation the real analyzer reports for the graph: per resource (inputs), then the stack (outputs). */
    async function analyzeWithServer(graph: GraphResource[]): Promise<Finding[]> {
        const out: Finding[] = [];
        const collect = (resp: any, urnOf: (d: any) => string) => {
            for (const d of resp.getDiagnosticsList()) {
                // The analyzer prefixes the policy description to the reported message.
                out.push({ policy: d.getPolicyname(), urn: urnOf(d), level: LEVEL_NAMES[d.getEnforcementlevel()], message: d.getMessage().split("\n").slice(1).join("\n") });
            }
        };
        for (const r of graph) {
            const req = new analyzerProto.AnalyzeRequest();
            req.setType(r.type);
            req.setUrn(r.urn);
            req.setName(r.name);
            req.setProperties(Struct.fromJavaScript(r.inputs));
            req.setOptions(options(r.parent));
            if (providerOf(r, graph)) req.setProvider(providerOf(r, graph));
            collect(await rpc("analyze", req), () => r.urn);
        }
        const stackReq = new analyzerProto.AnalyzeStackRequest();
        stackReq.setResourcesList(
            graph.map((r) => {
                const a = new analyzerProto.AnalyzerResource();
                a.setType(r.type);
                a.setUrn(r.urn);
                a.setName(r.name);
                a.setProperties(Struct.fromJavaScript(r.outputs));
                a.setOptions(options(r.parent));
                if (r.parent) a.setParent(r.parent);
                a.setDependenciesList([...r.dependencies]);
                if (providerOf(r, graph)) a.setProvider(providerOf(r, graph));
                return a;
            }),
        );
        collect(await rpc("analyzeStack", stackReq), (d) => d.getUrn());
        return out;
    }

    const key = (f: Finding) => `${f.policy} | ${f.level} | ${f.urn} | ${f.message}`;

    /** The mocked graph of a stack file, as plain JSON (the wire format has no `undefined`). */
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

    async function assertSameFindings(graph: GraphResource[], atLeast: number): Promise<void> {
        const offline = (await evaluatePolicies(resolvePolicyConfig(POLICIES), graph)).map((v) => ({ policy: v.policy, urn: v.urn ?? "", level: v.enforcementLevel, message: v.message }));
        const served = await analyzeWithServer(graph);
        assert.ok(served.length >= atLeast, `expected the broken invariants to be reported, got ${served.map(key)}`);
        assert.deepEqual(offline.map(key).sort(), served.map(key).sort());
    }

    test("dev graph, containers/network/PKI broken: the offline evaluator reports exactly what the analyzer reports", async () => {
        const graph = await graphOf(readStackFile("Pulumi.dev.yaml"), "dev");
        breakIt(graph, "ollama-container", (p) => (p.ports = [{ internal: 11434, external: 11434 }]));
        breakIt(graph, "gateway-container", (p) => Object.assign(p, { privileged: true, securityOpts: [] }));
        breakIt(graph, "pki-ca-key", (p) => Object.assign(p, { algorithm: "RSA", rsaBits: 2048 }));
        breakIt(graph, "network-to-ollama", (p) => (p.internal = false));
        await assertSameFindings(graph, 6);
    });

    test("prod graph with a managed ACL, identity/tailnet/ingress broken: same findings offline and served", async () => {
        const doc = parse(readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8"));
        doc.config["zero-trust-ollama:tailscale"].manageAcl = true;
        const graph = await graphOf(parseStackFile(stringify(doc), "prod (manageAcl)"), "prod");
        assert.deepEqual(await analyzeWithServer(graph), [], "the unbroken production graph is clean under the real analyzer too");
        breakIt(graph, "gateway-container", (p) => (p.ports[0].ip = "0.0.0.0"));
        breakIt(graph, "entra-app", (p) => Object.assign(p, { signInAudience: "AzureADMultipleOrgs", web: { ...p.web, implicitGrant: { accessTokenIssuanceEnabled: true } } }));
        breakIt(graph, "entra-principal", (p) => (p.appRoleAssignmentRequired = false));
        breakIt(graph, "tailnet-acl", (p) => (p.acl = JSON.stringify({ grants: [{ src: ["*"], dst: ["tag:ai-server"], ip: ["*"] }] })));
        breakIt(graph, "oauth2-proxy-cookie-secret", (p) => (p.length = 16));
        // A second ingress-role container on the gateway's Docker host: only the provider tells.
        breakIt(graph, "filter-container", (p) => Object.assign(p, { labels: [{ label: "zero-trust-ollama.role", value: "enclave" }], ports: [{ internal: 8443, external: 11443, ip: "127.0.0.1" }] }));
        const dockerProvider = graph.find((r) => r.type === "pulumi:providers:docker" && r.name === "docker")!.urn;
        for (const r of graph) if (r.name === "filter-container" || r.name === "gateway-container") Object.assign(r, { provider: dockerProvider });
        await assertSameFindings(graph, 10);
        assert.ok((await analyzeWithServer(graph)).some((f) => /publishes on the same Docker host as filter-container/.test(f.message)), "the per-host check ran with the providers the CLI sends");
    });
});
