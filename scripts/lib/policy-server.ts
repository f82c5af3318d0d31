/**
 * The policy pack's own analyzer, driven the way the Pulumi CLI drives it: `policies/index.ts`
 * runs as its own process (constructing the PolicyPack starts @pulumi/policy's gRPC server on
 * 127.0.0.1 and prints the port), and this client calls its analyzer interface: GetAnalyzerInfo,
 * Configure (policy config and enforcement levels, already validated by ./policy-eval like the
 * CLI validates them), Analyze per resource (inputs) and AnalyzeStack (outputs, parents,
 * dependencies, providers). Every verdict, enforcement level and message comes from that server.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { EnforcementLevel } from "@pulumi/policy";
import { PolicyEvaluationError, providerResolver, type GraphResource, type ResolvedPolicy, type Violation } from "./policy-eval";

// Generated gRPC/protobuf modules (the ones @pulumi/policy's server uses); their typings are not usable here.
const grpc = require("@grpc/grpc-js");
const analyzerRpc = require("@pulumi/pulumi/proto/analyzer_grpc_pb");
const analyzerProto = require("@pulumi/pulumi/proto/analyzer_pb");
const { Struct } = require("google-protobuf/google/protobuf/struct_pb");
const { Empty } = require("google-protobuf/google/protobuf/empty_pb");

/** The pack directory the Pulumi CLI is pointed at (`--policy-pack policies`). */
export const PACK_DIR = join(__dirname, "..", "..", "policies");

/**
 * Longest wait for the server to print its port. It compiles the pack and loads @pulumi/pulumi
 * first, which took 14 s on the shared 2-core machine under load; this is a bound, not a target.
 */
export const DEFAULT_START_TIMEOUT_MS = 120_000;
/** Longest wait for the server to exit after SIGTERM before it is killed outright. */
const STOP_TIMEOUT_MS = 5_000;
/** Analyze calls in flight at once (one HTTP/2 connection multiplexes them). */
const ANALYZE_CONCURRENCY = 32;

const WIRE_LEVEL: Record<EnforcementLevel, number> = { advisory: 0, mandatory: 1, disabled: 2, remediate: 3 };
const LEVEL_OF_WIRE: Record<number, EnforcementLevel> = { 0: "advisory", 1: "mandatory", 2: "disabled", 3: "remediate" };

/** The server could not be started, answered with something unusable, or broke the protocol; exit code 2. */
export class PolicyServerError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "PolicyServerError";
    }
}

/** A policy as the server announces it (GetAnalyzerInfo). */
export interface ServedPolicy {
    readonly name: string;
    readonly description: string;
    readonly enforcementLevel: EnforcementLevel;
}

export interface AnalyzerInfo {
    readonly name: string;
    readonly version: string;
    readonly policies: readonly ServedPolicy[];
}

/** Stderr without stack frames, for one readable error line when the server fails to start. */
function firstLines(stderr: string): string {
    const lines = stderr.split("\n").filter((l) => l.trim() && !/^\s+at /.test(l));
    return lines.slice(0, 3).join(" | ") || "(no output)";
}

/** Plain JSON data (the wire format has no `undefined`) as a protobuf Struct. */
function struct(v: Record<string, unknown>): unknown {
    return Struct.fromJavaScript(JSON.parse(JSON.stringify(v)));
}

/** The provider message the CLI sends with a resource. */
function providerMessages(graph: readonly GraphResource[]): (r: GraphResource) => unknown {
    const resolve = providerResolver(graph);
    return (r) => {
        const known = resolve(r);
        if (!known) return undefined;
        const p = new analyzerProto.AnalyzerProviderResource();
        p.setType(known.type);
        p.setUrn(known.urn);
        p.setName(known.name);
        p.setProperties(struct(known.props));
        return p;
    };
}

/** An AnalyzeRequest or AnalyzerResource filled with what both carry: type, URN, name, props, options, provider. */
function describe(msg: any, r: GraphResource, props: Record<string, unknown>, provider: unknown): any {
    msg.setType(r.type);
    msg.setUrn(r.urn);
    msg.setName(r.name);
    msg.setProperties(struct(props));
    const o = new analyzerProto.AnalyzerResourceOptions();
    o.setProtect(false);
    if (r.parent) o.setParent(r.parent);
    msg.setOptions(o);
    if (provider) msg.setProvider(provider);
    return msg;
}

/**
 * A policy that threw: the server answers `Error validating resource with policy '<name>' from
 * policy pack '<pack>':\n<error with its stack>`. Reported with the policy, resource and the
 * error's first line, never the stack.
 */
function policyFailure(err: { details?: string; message?: string }, urn: string | undefined): Error {
    const details = err.details ?? err.message ?? String(err);
    const m = /policy '([^']+)' from policy pack [^:]*:\n([^\n]*)/.exec(details);
    if (m) return new PolicyEvaluationError(m[1], urn, new Error(m[2].replace(/^Error: /, "")));
    return new PolicyServerError(`policy server failed${urn ? ` on ${urn}` : ""}: ${details.split("\n")[0]}`);
}

/** Servers started and not yet stopped, so a signal handler can stop them all. */
const running = new Set<PolicyServer>();

/** Stop every server this process started (for SIGINT/SIGTERM handlers). */
export function stopPolicyServers(): Promise<void> {
    return Promise.all([...running].map((s) => s.stop())).then(() => undefined);
}

/** One running pack server and a client connected to it. Calls are serialised (Configure is server-wide state). */
export class PolicyServer {
    private queue: Promise<unknown> = Promise.resolve();
    private stopped?: Promise<void>;
    private readonly stopOnExit = () => this.child.kill("SIGKILL");

    private constructor(
        private readonly child: ChildProcess,
        private readonly client: any,
    ) {
        process.once("exit", this.stopOnExit);
        running.add(this);
    }

    /**
     * Start the server from `packDir` (its working directory, as under the CLI: PolicyPack reads the
     * pack version from package.json there) and connect. Fails with PolicyServerError, the process
     * stopped, when it exits or prints no port within `startTimeoutMs`.
     */
    static async start(packDir: string = PACK_DIR, startTimeoutMs: number = DEFAULT_START_TIMEOUT_MS): Promise<PolicyServer> {
        // tsx resolved here, so a pack directory needs no node_modules of its own.
        const tsx = pathToFileURL(require.resolve("tsx")).href;
        const child = spawn(process.execPath, ["--require", join(__dirname, "exit-with-parent.cjs"), "--import", tsx, "index.ts"], { cwd: packDir, stdio: ["ignore", "pipe", "pipe"] });
        let stderr = "";
        child.stderr!.on("data", (d) => (stderr += d));
        const kill = () => child.kill("SIGKILL");
        process.once("exit", kill);
        try {
            const port = await new Promise<number>((resolve, reject) => {
                let out = "";
                const timer = setTimeout(() => reject(new PolicyServerError(`policy server (${packDir}) printed no port within ${startTimeoutMs / 1000} s`)), startTimeoutMs);
                child.stdout!.on("data", (d) => {
                    out += d;
                    const m = /^(\d+)\n/.exec(out);
                    if (m) {
                        clearTimeout(timer);
                        resolve(Number(m[1]));
                    }
                });
                child.once("error", (e) => {
                    clearTimeout(timer);
                    reject(new PolicyServerError(`policy server (${packDir}) could not be started: ${e.message}`));
                });
                child.once("exit", (code, signal) => {
                    clearTimeout(timer);
                    reject(new PolicyServerError(`policy server (${packDir}) exited (${signal ?? `code ${code}`}) before serving: ${firstLines(stderr)}`));
                });
            });
            const client = new analyzerRpc.AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": -1 });
            return new PolicyServer(child, client);
        } catch (e) {
            kill();
            throw e;
        } finally {
            process.removeListener("exit", kill);
        }
    }

    private rpc(method: string, req: unknown): Promise<any> {
        return new Promise((resolve, reject) => this.client[method](req, (err: Error | null, resp: unknown) => (err ? reject(err) : resolve(resp))));
    }

    private serialised<T>(work: () => Promise<T>): Promise<T> {
        const run = this.queue.then(work, work);
        this.queue = run.catch(() => undefined);
        return run;
    }

    /** The pack's name, version and policies as the server announces them. */
    info(): Promise<AnalyzerInfo> {
        return this.serialised(async () => {
            const info = await this.rpc("getAnalyzerInfo", new Empty());
            return {
                name: info.getName(),
                version: info.getVersion(),
                policies: info.getPoliciesList().map((p: any) => ({ name: p.getName(), description: p.getDescription(), enforcementLevel: LEVEL_OF_WIRE[p.getEnforcementlevel()] })),
            };
        });
    }

    /** Fails unless the server serves exactly these policies, in this order (the pack and the caller read one POLICIES array). */
    async expectPolicies(names: readonly string[]): Promise<void> {
        const served = (await this.info()).policies.map((p) => p.name);
        if (served.join("\n") !== names.join("\n")) throw new PolicyServerError(`the policy server serves [${served.join(", ")}], expected [${names.join(", ")}]`);
    }

    /**
     * Configure every policy (its effective level and its config with defaults filled in), then
     * analyze the graph: each resource's inputs, then the whole stack's outputs. Violations come
     * back in pack order, then graph order, as `pulumi preview` lists them.
     */
    analyze(resolved: readonly ResolvedPolicy[], graph: readonly GraphResource[]): Promise<Violation[]> {
        return this.serialised(async () => {
            const configure = new analyzerProto.ConfigureAnalyzerRequest();
            const map = configure.getPolicyconfigMap();
            for (const rp of resolved) {
                const pc = new analyzerProto.PolicyConfig();
                pc.setEnforcementlevel(WIRE_LEVEL[rp.enforcementLevel]);
                pc.setProperties(struct(rp.config));
                map.set(rp.policy.name, pc);
            }
            await this.rpc("configure", configure);

            const order = new Map(resolved.map((rp, i) => [rp.policy.name, i]));
            const descriptions = new Map(resolved.map((rp) => [rp.policy.name, rp.policy.description]));
            const found: Violation[][] = graph.map(() => []);
            const collect = (into: Violation[], resp: any, urnOf: (d: any) => string | undefined) => {
                for (const d of resp.getDiagnosticsList()) {
                    const policy = d.getPolicyname();
                    // The server puts the policy's description before the reported message.
                    const description = descriptions.get(policy) ?? d.getDescription();
                    const message: string = d.getMessage();
                    into.push({ policy, enforcementLevel: LEVEL_OF_WIRE[d.getEnforcementlevel()], urn: urnOf(d), message: message.startsWith(`${description}\n`) ? message.slice(description.length + 1) : message });
                }
            };
            const providerOf = providerMessages(graph);

            let next = 0;
            const worker = async () => {
                while (next < graph.length) {
                    const i = next++;
                    const r = graph[i];
                    const req = describe(new analyzerProto.AnalyzeRequest(), r, r.inputs, providerOf(r));
                    const resp = await this.rpc("analyze", req).catch((e) => Promise.reject(policyFailure(e, r.urn)));
                    collect(found[i], resp, () => r.urn);
                }
            };
            await Promise.all(Array.from({ length: Math.min(ANALYZE_CONCURRENCY, graph.length) }, worker));

            const stackReq = new analyzerProto.AnalyzeStackRequest();
            stackReq.setResourcesList(
                graph.map((r) => {
                    const a = describe(new analyzerProto.AnalyzerResource(), r, r.outputs, providerOf(r));
                    if (r.parent) a.setParent(r.parent);
                    a.setDependenciesList([...r.dependencies]);
                    const deps = a.getPropertydependenciesMap();
                    for (const [k, urns] of Object.entries(r.propertyDependencies)) {
                        const pd = new analyzerProto.AnalyzerPropertyDependencies();
                        pd.setUrnsList([...urns]);
                        deps.set(k, pd);
                    }
                    return a;
                }),
            );
            const stackFound: Violation[] = [];
            collect(stackFound, await this.rpc("analyzeStack", stackReq).catch((e) => Promise.reject(policyFailure(e, undefined))), (d) => d.getUrn() || undefined);

            const all = [...found.flat(), ...stackFound];
            // Stable: within one policy, graph order (resource policies) or report order (stack policies).
            return all.sort((a, b) => (order.get(a.policy) ?? order.size) - (order.get(b.policy) ?? order.size));
        });
    }

    /** Close the connection and stop the server (SIGTERM, then SIGKILL after a bound). Idempotent. */
    stop(): Promise<void> {
        this.stopped ??= new Promise<void>((resolve) => {
            this.client.close();
            running.delete(this);
            process.removeListener("exit", this.stopOnExit);
            if (this.child.exitCode !== null || this.child.signalCode !== null) return resolve();
            const force = setTimeout(() => this.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
            this.child.once("exit", () => {
                clearTimeout(force);
                resolve();
            });
            this.child.kill("SIGTERM");
        });
        return this.stopped;
    }
}

/**
 * Start the pack's server, check it serves the policies `resolved` configures, analyze the graph
 * and stop the server whatever happens. `starting` lets a caller start the server early, in
 * parallel with building the graph.
 */
export async function analyzeWithPackServer(resolved: readonly ResolvedPolicy[], graph: readonly GraphResource[], starting: Promise<PolicyServer> = PolicyServer.start()): Promise<Violation[]> {
    const server = await starting;
    try {
        await server.expectPolicies(resolved.map((rp) => rp.policy.name));
        return await server.analyze(resolved, graph);
    } finally {
        await server.stop();
    }
}
