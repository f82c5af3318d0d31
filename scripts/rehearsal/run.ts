/**
 * One rehearsal: the program under the same mocks `plan` uses (with real key material), its
 * Docker resources mapped (mapping.ts) and created on the local engine (engine.ts), every
 * container healthy by its own healthcheck. Used by `npm run rehearse` and the engine tests.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { formatProblems, type StackConfig } from "../../components/config";
import type { StackFile } from "../../components/stack-file";
import type { StackOutputs } from "../../components/stack";
import { checkedRun } from "../lib/checked-run";
import { mockOutputs } from "../lib/mock-outputs";
import { outputOf, runProgramUnderMocks, type MockRunOptions, type RecordedResource } from "../lib/mock-program";
import { sandboxUsers, type SandboxUser } from "../sandbox/stub-oauth2-proxy";
import { bindScratchDir, deploy, removeByLabel, replaceContainer, teardown, waitHealthy, type CheckRun, type Deployed } from "./engine";
import { planRehearsal, TYPES, type RehearsalPlan } from "./mapping";
import { realTlsOutputs } from "./real-pki";

export interface RehearsalOptions {
    /** Stack name: every Docker object is named zto-<stackName>-…, so two rehearsals never collide. */
    readonly stackName: string;
    /** Invokes the program may make (plan's offline answers). */
    readonly calls?: MockRunOptions["calls"];
    readonly log?: (line: string) => void;
    /** How long services may take to become healthy (a bound, not a target: default 180 s). */
    readonly healthTimeoutMs?: number;
}

export interface Rehearsal {
    readonly config: StackConfig;
    readonly plan: RehearsalPlan;
    readonly deployed: Deployed;
    /** Scratch directory: device certificates, bind-mount stand-ins. */
    readonly dir: string;
    /** https://127.0.0.1:<port> of the published gateway. */
    readonly url: string;
    readonly caPath: string;
    /** Device name -> cert and key paths (real certificates signed by the stack's CA). */
    readonly devices: Record<string, { cert: string; key: string }>;
    /** The stub oauth2-proxy's users (session cookie and bearer token each). */
    readonly users: SandboxUser[];
    /** Container name of the stack's container of this role (first one). */
    containerOf(role: string): { name: string; id: string };
    /** Seconds: program under mocks, images, verdict (the program run again on the checks' real output), create+start, healthy. */
    readonly timings: Record<string, number>;
}

class RehearsalError extends Error {}

const DEFAULT_HEALTH_TIMEOUT_MS = 180_000;

/** The program's resources under the plan mocks, with real tls outputs. */
export async function programUnderMocks(file: StackFile, opts: Pick<RehearsalOptions, "stackName" | "calls">): Promise<{ config: StackConfig; resources: RecordedResource[]; outputs: StackOutputs }> {
    const run = await runProgramUnderMocks(file, { stack: opts.stackName, calls: opts.calls, outputs: realTlsOutputs });
    if (!run.ok) throw new RehearsalError(formatProblems(run.problems));
    return run;
}

/** The id a container's `image` input holds for each image resource (what the plan mocks return). */
export const mockImageIds = (r: RecordedResource): string => {
    const out = mockOutputs(r.type, r.name, r.inputs) as { imageId?: string; repoDigest?: string };
    return String(r.type === TYPES.remoteImage ? out.imageId : out.repoDigest);
};

/**
 * The program's own verdict on what the checks printed on the engine, as `pulumi up` reaches it:
 * the program runs again with each check container answered by its real output, and a refusal
 * ends that run (in a child process) with the program's message. The rehearsal then stops with
 * it, before any container that would use the refused store or volume exists.
 */
async function verdictOnEngine(file: StackFile, stackName: string, runs: CheckRun[], scratch: string, log: (line: string) => void): Promise<void> {
    const report = await checkedRun({ file, stack: stackName, storeProbe: { byContainer: Object.fromEntries(runs.map((r) => [r.container.name, r.logs])) } });
    const names = runs.map((r) => r.container.name).join(", ");
    if (report.errors.length === 0) {
        log(`rehearse: the program accepted what ${runs.length} check(s) found on the engine (${names})`);
        return;
    }
    // Said with the refusal: the model store the message names is this rehearsal's scratch directory.
    const binds = runs.flatMap((r) => r.container.plan.bindSources.map((source) => `${source} was ${bindScratchDir(scratch, r.container.plan.resourceName, source)} (${r.container.name})`));
    throw new RehearsalError(
        `the program refused what the checks found on this engine (${names}):\n${report.errors.join("\n")}` +
            (binds.length ? `\n(bind-mount sources are scratch directories here: ${binds.join("; ")})` : ""),
    );
}

export async function rehearse(file: StackFile, opts: RehearsalOptions): Promise<Rehearsal> {
    const log = opts.log ?? (() => undefined);
    const timings: Record<string, number> = {};
    const since = (t0: number) => Math.round((Date.now() - t0) / 100) / 10;
    let t0 = Date.now();
    const { config, resources, outputs } = await programUnderMocks(file, opts);
    if (config.gateway.listen !== "loopback") throw new RehearsalError("gateway.listen must be loopback to rehearse: this machine has no Tailscale address to publish on");
    const plan = planRehearsal(resources, mockImageIds);
    timings.program = since(t0);
    for (const n of plan.notApplied) log(`rehearse: ${n}`);

    const dir = mkdtempSync(path.join(tmpdir(), "zto-rehearsal-"));
    const users = config.identity.provider === "none" ? [] : sandboxUsers(config);
    const oauth2 = plan.containers.find((c) => c.role === "oauth2-proxy");
    const extraEnv = oauth2 ? { [oauth2.resourceName]: [`ZTO_STUB_USERS=${JSON.stringify(users)}`] } : {};
    t0 = Date.now();
    let deployed: Deployed;
    try {
        // Leftovers of a killed earlier run of this stack name, found by their label.
        await removeByLabel(opts.stackName, log);
        deployed = await deploy(plan, opts.stackName, dir, extraEnv, log, async (runs) => {
            const tc = Date.now();
            await verdictOnEngine(file, opts.stackName, runs, dir, log);
            timings.verdict = since(tc);
        });
    } catch (e) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
    }
    timings.images = Math.round(deployed.imageSeconds * 10) / 10;
    timings.create = Math.round((since(t0) - timings.images - (timings.verdict ?? 0)) * 10) / 10;
    try {
        t0 = Date.now();
        await waitHealthy(deployed, opts.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS);
        timings.healthy = since(t0);
    } catch (e) {
        await teardown(deployed);
        rmSync(dir, { recursive: true, force: true });
        throw e;
    }

    const caPath = path.join(dir, "ca.crt");
    writeFileSync(caPath, (await outputOf(outputs.caCertPem)).value);
    const bundles = (await outputOf(outputs.deviceBundles)).value;
    const devices: Record<string, { cert: string; key: string }> = {};
    mkdirSync(path.join(dir, "devices"), { recursive: true });
    for (const [name, b] of Object.entries(bundles)) {
        devices[name] = { cert: path.join(dir, "devices", `${name}.crt`), key: path.join(dir, "devices", `${name}.key`) };
        writeFileSync(devices[name].cert, b.certPem);
        writeFileSync(devices[name].key, b.keyPem, { mode: 0o600 });
    }
    return {
        config,
        plan,
        deployed,
        dir,
        url: `https://127.0.0.1:${config.gateway.port}`,
        caPath,
        devices,
        users,
        timings,
        containerOf(role) {
            const c = deployed.containers.find((x) => x.plan.role === role);
            if (!c) throw new RehearsalError(`no ${role} container in this rehearsal`);
            return c;
        },
    };
}

/** Removes every Docker object of the rehearsal and its scratch directory. */
export async function endRehearsal(r: Rehearsal): Promise<void> {
    await teardown(r.deployed);
    rmSync(r.dir, { recursive: true, force: true });
}

/** What a second apply did: containers replaced, and those left running as they were. */
export interface Applied {
    readonly replaced: string[];
    readonly kept: string[];
}

/**
 * `pulumi up` after a config edit: the program runs again and only the containers whose inputs
 * changed are replaced (engine.ts `replaceContainer`), in the program's order; networks and
 * volumes stay, as the provider keeps them. A device change replaces only the gateway's config
 * writer: the gateway itself keeps running and reloads the new generation in place.
 */
export async function applyAgain(r: Rehearsal, file: StackFile, opts: RehearsalOptions): Promise<Applied> {
    const log = opts.log ?? (() => undefined);
    const { resources } = await programUnderMocks(file, opts);
    const next = planRehearsal(resources, mockImageIds);
    const known = new Set(r.plan.containers.map((c) => c.resourceName));
    const added = next.containers.filter((c) => !known.has(c.resourceName));
    if (added.length) throw new RehearsalError(`${added.map((c) => c.resourceName).join(", ")}: new containers; the rehearsal replaces containers only`);
    const applied: Applied = { replaced: [], kept: [] };
    for (const c of next.containers) {
        const old = r.deployed.containers.find((x) => x.plan.resourceName === c.resourceName)!;
        if (JSON.stringify(old.plan) === JSON.stringify(c)) {
            applied.kept.push(old.name);
            continue;
        }
        await replaceContainer(r.deployed, old, c, r.dir, log);
        applied.replaced.push(c.resourceName);
    }
    await waitHealthy(r.deployed, opts.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS);
    return applied;
}

export { RehearsalError };
