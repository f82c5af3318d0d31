/**
 * Runs the program under Pulumi's mocks, with no CLI, credentials or network, and records every
 * resource it registers: type, name, parent and inputs (secrets kept distinguishable). Used by
 * the mock tests and by `npm run plan`, so both see exactly the same graph.
 */
import * as pulumi from "@pulumi/pulumi";
import * as settings from "@pulumi/pulumi/runtime/settings";
import { PROJECT, type ConfigProblem, type StackConfig } from "../../components/config";
import { deployStack, type StackOutputs } from "../../components/stack";
import { parseStackFileConfig, toPulumiConfigMap, type StackFile } from "../../components/stack-file";
import { isStoreCheck, mockOutputs } from "./mock-outputs";

/** Pulumi's wire marker for a secret value. */
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

export interface RecordedResource {
    readonly urn: string;
    readonly type: string;
    readonly name: string;
    /** URN of the parent, or undefined for top-level resources. */
    readonly parent?: string;
    readonly custom: boolean;
    /** Provider reference (`<provider urn>::<id>`) of a custom resource given an explicit provider. */
    readonly provider?: string;
    /** Inputs with secrets unwrapped (for assertions). */
    readonly inputs: Record<string, any>;
    /** Inputs with every secret value replaced by "[secret]" (for display). */
    readonly maskedInputs: Record<string, any>;
    /** Top-level input names whose value is (or contains) a secret. */
    readonly secretInputs: readonly string[];
    /** URNs the resource depends on (dependsOn and resources its inputs came from). */
    readonly dependencies: readonly string[];
}

/** Answers an invoke (`call`) token; throwing means the token was not expected. */
export type CallMock = (inputs: Record<string, any>) => Record<string, any>;

export interface MockRunOptions {
    readonly stack?: string;
    /** Invoke tokens the program may call, with their mocked results. Any other token throws. */
    readonly calls?: Record<string, CallMock>;
    /** Called with the recorded resources before the run settles (a run that fails still shows what it registered). */
    readonly onRegistered?: (resources: readonly RecordedResource[]) => void;
    /**
     * What the probe prints on the mocked host (default: LUKS-backed), for the model store, for Docker
     * volumes, or for one check container by its name (the rehearsal's real output from the engine).
     */
    readonly storeProbe?: StoreProbeAnswers;
    /** Run the program as `index.ts` would be run (import it) instead of calling deployStack. */
    readonly viaIndex?: boolean;
    /** Outputs for some resources instead of the placeholders (the rehearsal's real PKI); undefined: the placeholders. */
    readonly outputs?: (type: string, name: string, inputs: Record<string, any>) => Record<string, unknown> | undefined;
}

/** Probe output the mocks answer a check container with, instead of the LUKS-backed default. */
export interface StoreProbeAnswers {
    readonly modelStore?: string;
    readonly volumes?: string;
    /** By check container name; wins over the two above. */
    readonly byContainer?: Readonly<Record<string, string>>;
}

export type MockRunResult =
    | { ok: true; config: StackConfig; resources: RecordedResource[]; outputs: StackOutputs }
    | { ok: false; problems: ConfigProblem[]; resources: RecordedResource[] };

function isSecretValue(v: unknown): v is { value: unknown } {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** Walks a wire-format value: returns it unwrapped, masked, and whether any secret was inside. */
function unwrap(v: unknown): { plain: any; masked: any; secret: boolean } {
    if (isSecretValue(v)) return { plain: unwrap(v.value).plain, masked: "[secret]", secret: true };
    if (Array.isArray(v)) {
        const parts = v.map(unwrap);
        return { plain: parts.map((p) => p.plain), masked: parts.map((p) => p.masked), secret: parts.some((p) => p.secret) };
    }
    if (typeof v === "object" && v !== null) {
        const plain: Record<string, unknown> = {};
        const masked: Record<string, unknown> = {};
        let secret = false;
        for (const [k, x] of Object.entries(v)) {
            const p = unwrap(x);
            plain[k] = p.plain;
            masked[k] = p.masked;
            secret ||= p.secret;
        }
        return { plain, masked, secret };
    }
    return { plain: v, masked: v, secret: false };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Resolve every Output (deeply) in a value, so the program's applies have all run. */
async function settle(value: unknown): Promise<void> {
    if (pulumi.Output.isInstance(value)) {
        await new Promise<void>((resolve) => (value as pulumi.Output<unknown>).apply((v) => settle(v).then(resolve)));
        return;
    }
    if (Array.isArray(value)) await Promise.all(value.map(settle));
    else if (value && typeof value === "object" && !pulumi.Resource.isInstance(value)) await Promise.all(Object.values(value).map(settle));
}

/**
 * Validate the stack file's config and, when valid, run the program under mocks. Invalid config
 * registers nothing, exactly as in `index.ts`.
 */
export async function runProgramUnderMocks(file: StackFile, opts: MockRunOptions = {}): Promise<MockRunResult> {
    const stack = opts.stack ?? "mock";
    const resources: RecordedResource[] = [];
    opts.onRegistered?.(resources);
    let inFlight = 0;

    await pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                const state = { ...args.inputs, ...(opts.outputs?.(args.type, args.name, unwrap(args.inputs).plain) ?? mockOutputs(args.type, args.name, args.inputs)) };
                if (isStoreCheck(args.inputs)) {
                    const probed = opts.storeProbe?.byContainer?.[args.inputs.name] ?? (args.inputs.mounts?.[0]?.type === "volume" ? opts.storeProbe?.volumes : opts.storeProbe?.modelStore);
                    if (probed !== undefined) state.containerLogs = probed;
                }
                return { id: `${args.name}-id`, state };
            },
            call: (args) => {
                const fn = opts.calls?.[args.token];
                if (!fn) throw new Error(`unexpected invoke ${args.token} under mocks`);
                return fn(args.inputs);
            },
        },
        PROJECT,
        stack,
        false,
    );
    const monitor = settings.getMonitor() as any;
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, callback: (err: unknown, resp: any) => void) => {
        inFlight++;
        const raw = unwrap(req.getObject()?.toJavaScript() ?? {});
        register(req, (err: unknown, resp: any) => {
            if (!err) {
                const secretInputs = Object.entries(req.getObject()?.toJavaScript() ?? {})
                    .filter(([, v]) => unwrap(v).secret)
                    .map(([k]) => k);
                resources.push({
                    urn: resp.getUrn(),
                    type: req.getType(),
                    name: req.getName(),
                    parent: req.getParent() || undefined,
                    custom: req.getCustom(),
                    provider: req.getProvider() || undefined,
                    inputs: raw.plain,
                    maskedInputs: raw.masked,
                    secretInputs,
                    dependencies: req.getDependenciesList(),
                });
            }
            inFlight--;
            callback(err, resp);
        });
    };

    const { config, secretKeys } = toPulumiConfigMap(file);
    pulumi.runtime.setAllConfig(config, secretKeys);

    let outputs: StackOutputs;
    const parsed = parseStackFileConfig(file);
    if (opts.viaIndex) {
        // The real entry point: it validates config itself and throws a RunError when invalid.
        const indexPath = require.resolve("../../index");
        delete require.cache[indexPath];
        outputs = require(indexPath) as StackOutputs;
        if (!parsed.ok) throw new Error("index.ts accepted config that parseStackConfig rejects");
    } else {
        if (!parsed.ok) return { ok: false, problems: parsed.problems, resources };
        const cfg = new pulumi.Config(PROJECT);
        outputs = deployStack(parsed.config, {
            oidcClientSecret: parsed.config.hasOidcClientSecret ? cfg.requireSecret("oidcClientSecret") : undefined,
            tailscaleLogstreamToken: parsed.config.hasTailscaleLogstreamToken ? cfg.requireSecret("tailscaleLogstreamToken") : undefined,
        });
    }
    await settle(outputs);
    // Registrations issued from applies may still be in flight; wait until the graph is quiet.
    let quietTicks = 0;
    while (quietTicks < 5) {
        await tick();
        quietTicks = inFlight === 0 ? quietTicks + 1 : 0;
    }
    if (!parsed.ok) throw new Error("unreachable: invalid config produced a graph");
    return { ok: true, config: parsed.config, resources, outputs };
}

/** Await one Output's value (and whether it is secret) under mocks. */
export function outputOf<T>(o: pulumi.Output<T>): Promise<{ value: T; secret: boolean }> {
    return Promise.all([new Promise<T>((r) => o.apply((v) => r(v))), pulumi.isSecret(o)]).then(([value, secret]) => ({ value, secret }));
}
