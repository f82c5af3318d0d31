/**
 * The encrypted model store (issue 20): checked on the Docker host that runs Ollama before Ollama
 * is created, and provisioned there when the operator asks. The check is a short-lived container
 * that bind-mounts the models path read-only and runs probe.py; decideModelStore turns the facts
 * it prints into a verdict. Ollama's bind mount takes its source from `verifiedPath`, which
 * resolves only on a passing verdict: a refused store stops `pulumi up` before Ollama exists.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { MODEL_STORE_CHECK_LABEL, hardenedContainerArgs, type LoggingTarget } from "../hardening";
import { decideModelStore, formatVerdict, parseProbeOutput } from "./decide";

export { MODEL_STORE_CHECK_LABEL };
/** The probe's source; it runs as `python3 -c <source>` so the check's root filesystem stays read-only. */
export const PROBE_SOURCE = fs.readFileSync(path.join(__dirname, "probe.py"), "utf8");
/** Where the check container sees the store. */
export const PROBE_STORE_DIR = "/store";
/** Where the provisioning container sees the store's parent directory. */
export const PROVISION_PARENT_DIR = "/parent";
/** When this program run started: a label on the check, so it re-runs at every `pulumi up`. */
export const DEPLOYMENT_STARTED = new Date().toISOString();
/** fscrypt master keys are 64 random bytes (FSCRYPT_MAX_KEY_SIZE), a Pulumi secret. */
export const FSCRYPT_KEY_BYTES = 64;

/** Values of the check label on Ollama's container; the policy pack reads them. */
export const MODEL_STORE_CHECK = {
    /** The check ran and Ollama's mount source comes from its passing verdict. */
    verified: "verified",
    /** ollama.allowUnencryptedModels in a development stack. */
    skipped: "skipped",
    /** ollama.allowUnencryptedModels in a stack that also sets requirePinnedImages. */
    skippedPinned: "skipped-in-pinned-stack",
} as const;

export interface ModelStoreCheckArgs {
    /** Docker provider of the host that runs Ollama. */
    readonly provider: docker.Provider;
    /** Host path of the model store (ollama.modelsPath). */
    readonly hostPath: string;
    /** Image the probe runs in (python3). */
    readonly probeImage: string;
    /** Name prefix of the short-lived check and provisioning containers. */
    readonly containerName: pulumi.Input<string>;
    /** ollama.allowUnencryptedModels: no check, a warning at every run, flagged by the policy pack. */
    readonly allowUnencrypted: boolean;
    /** The stack sets requirePinnedImages: an opt-out there is a mandatory policy violation. */
    readonly pinnedStack: boolean;
    /** ollama.modelStore.provision: create the encrypted directory before checking it. */
    readonly provision?: "fscrypt";
    /** Where the check's container logs go. */
    readonly logging: LoggingTarget;
}

/** What a refused check names: the store or volume, the advice for a plain disk, what is not created. */
export interface CheckSubject {
    /** How messages name it, e.g. "model store /srv/m" or "Docker volume zto-gateway-config". */
    readonly subject: string;
    /** The name decideModelStore uses in its findings (the host path, or the subject). */
    readonly name: string;
    /** Advice when it is on a plain filesystem; default: the model store's. */
    readonly unencryptedFix?: string;
    /** What the refusal keeps from being created, e.g. "Ollama". */
    readonly consumer: string;
}

/** The probe's verdict; a refusal is an error for `pulumi up` (the message only, no stack trace). */
export function verdictOrRefusal(s: CheckSubject, probeLogs: string | undefined): void {
    let verdict;
    try {
        verdict = decideModelStore(s.name, parseProbeOutput(probeLogs ?? ""), s.unencryptedFix);
    } catch (e) {
        throw new pulumi.RunError(`${s.subject} could not be checked, so ${s.consumer} is not created: ${(e as Error).message}`);
    }
    if (!verdict.encrypted) throw new pulumi.RunError(`${formatVerdict(s.subject, verdict)} ${s.consumer} is not created.`);
}

/** verdictOrRefusal for Ollama's model store: the host path, once it passed. */
export function verifiedPathOf(hostPath: string, probeLogs: string | undefined): string {
    verdictOrRefusal({ subject: `model store ${hostPath}`, name: hostPath, consumer: "Ollama" }, probeLogs);
    return hostPath;
}

/** Arguments every short-lived check container shares: no network, read-only, attached until it exits. */
export function shortLivedContainer(image: docker.RemoteImage, logging: LoggingTarget) {
    return {
        ...hardenedContainerArgs("model-store-check", logging, { "zero-trust-ollama.check-run": DEPLOYMENT_STARTED }),
        image: image.imageId,
        restart: "no",
        mustRun: false,
        attach: true,
        logs: true,
        networkMode: "none",
        readOnly: true,
        memory: 128,
    };
}

export class ModelStoreCheck extends pulumi.ComponentResource {
    /** The models path, resolved only once the store passed the check (or the check is waived). */
    public readonly verifiedPath: pulumi.Output<string>;
    /** Labels for Ollama's container: how its store was verified. */
    public readonly ollamaLabels: Record<string, string>;
    /** The fscrypt key (secret) when ollama.modelStore.provision is fscrypt: the runbook unlocks with it. */
    public readonly fscryptKeyHex?: pulumi.Output<string>;

    constructor(name: string, args: ModelStoreCheckArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:model-store:ModelStoreCheck", name, args, opts);
        const child = { parent: this, provider: args.provider };

        if (args.allowUnencrypted) {
            pulumi.log.warn(
                `ollama.allowUnencryptedModels is true: the model store ${args.hostPath} is NOT checked for encryption at rest; models and prompt caches may land on a plain disk. Development stacks only.`,
                this,
            );
            this.ollamaLabels = { [MODEL_STORE_CHECK_LABEL]: args.pinnedStack ? MODEL_STORE_CHECK.skippedPinned : MODEL_STORE_CHECK.skipped };
            this.verifiedPath = pulumi.output(args.hostPath);
            this.registerOutputs({ verifiedPath: this.verifiedPath });
            return;
        }

        const image = new docker.RemoteImage(`${name}-image`, { name: args.probeImage, keepLocally: true }, child);
        const shortLived = shortLivedContainer(image, args.logging);

        let provisioned: pulumi.Resource[] = [];
        if (args.provision === "fscrypt") {
            const key = new random.RandomBytes(`${name}-fscrypt-key`, { length: FSCRYPT_KEY_BYTES }, { parent: this, additionalSecretOutputs: ["hex", "base64"] });
            this.fscryptKeyHex = pulumi.secret(key.hex);
            const parent = path.posix.dirname(args.hostPath);
            provisioned = [
                new docker.Container(
                    `${name}-provision`,
                    {
                        name: pulumi.interpolate`${args.containerName}-provision`,
                        ...shortLived,
                        // Removed as soon as it exits: the key in its environment is kept nowhere on the host.
                        rm: true,
                        logs: false,
                        envs: [pulumi.interpolate`ZTO_FSCRYPT_KEY=${this.fscryptKeyHex}`],
                        command: ["python3", "-c", PROBE_SOURCE, "provision-fscrypt", path.posix.join(PROVISION_PARENT_DIR, path.posix.basename(args.hostPath))],
                        mounts: [{ type: "bind", source: parent, target: PROVISION_PARENT_DIR, readOnly: false }],
                    },
                    { ...child, deleteBeforeReplace: true },
                ),
            ];
        }

        const probe = new docker.Container(
            `${name}-probe`,
            {
                name: pulumi.interpolate`${args.containerName}-check`,
                ...shortLived,
                command: ["python3", "-c", PROBE_SOURCE, "inspect", PROBE_STORE_DIR],
                mounts: [{ type: "bind", source: args.hostPath, target: PROBE_STORE_DIR, readOnly: true }],
            },
            { ...child, deleteBeforeReplace: true, dependsOn: provisioned },
        );

        this.ollamaLabels = { [MODEL_STORE_CHECK_LABEL]: MODEL_STORE_CHECK.verified };
        // A preview has no probe output yet: it shows the plain path so Ollama's plan is not noise;
        // `pulumi up` registers Ollama only after the verdict below has resolved.
        this.verifiedPath = pulumi.runtime.isDryRun() ? pulumi.output(args.hostPath) : probe.containerLogs.apply((logs) => verifiedPathOf(args.hostPath, logs));
        this.registerOutputs({ verifiedPath: this.verifiedPath });
    }
}
