import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ModelStoreSettings } from "./config";
import { ENCRYPTED_STORE_LABEL, hardenedContainerArgs, type LoggingTarget } from "./hardening";
import { compareVersions, NO_CLOUD_SINCE, ollamaImageVersion } from "./ollama-version";
import { ModelStoreCheck } from "./model-store";

/** Port Ollama listens on inside the internal network. */
export const OLLAMA_PORT = 11434;
/** Where the image keeps models; the operator's encrypted host path is bind-mounted here. */
export const OLLAMA_MODELS_DIR = "/root/.ollama";

export type GpuRequest = "all" | "none" | number;

export interface OllamaRuntimeArgs {
    /** Docker provider of the GPU host. */
    readonly provider: docker.Provider;
    /** Pinned Ollama image reference. */
    readonly image: pulumi.Input<string>;
    /** GPUs to reserve: all, none (CPU, dev only) or a count. */
    readonly gpus: GpuRequest;
    /** Host path of the encrypted (LUKS/fscrypt/gocryptfs) model store. */
    readonly modelsPath: string;
    /** How the store is checked (and provisioned) on this host before Ollama is created. */
    readonly modelStore: ModelStoreSettings;
    /** The network Ollama shares with its single caller (internal, no host address); its only network. */
    readonly callerNetwork: pulumi.Input<string>;
    /** Container name; also the DNS name the gateway and filter use. */
    readonly containerName: pulumi.Input<string>;
    /** Memory limit in MiB. */
    readonly memoryLimitMiB: pulumi.Input<number>;
    /** How long Ollama keeps a model loaded after use, e.g. 5m. */
    readonly keepAlive: pulumi.Input<string>;
    /** Where container logs go. */
    readonly logging: LoggingTarget;
}

/**
 * Ollama's environment. `OLLAMA_NO_CLOUD=1` is set unless the pinned tag names a release older
 * than NO_CLOUD_SINCE: there it would be a no-op that only makes the graph claim a control it
 * does not have (cloud models on such pins are refused by the filter's name check and cannot
 * reach ollama.com anyway, as Ollama's only network has no egress). An unknown tag (`latest`)
 * keeps the variable: fail closed.
 */
export function ollamaEnvs(image: string, keepAlive: string): string[] {
    const version = ollamaImageVersion(image);
    const noCloud = version === undefined || compareVersions(version, NO_CLOUD_SINCE) >= 0;
    return [`OLLAMA_HOST=0.0.0.0:${OLLAMA_PORT}`, ...(noCloud ? ["OLLAMA_NO_CLOUD=1"] : []), `OLLAMA_KEEP_ALIVE=${keepAlive}`];
}

/** The `gpus` argument Docker understands, or undefined for CPU-only. */
export function dockerGpus(gpus: GpuRequest): string | undefined {
    return gpus === "none" ? undefined : String(gpus);
}

/**
 * Ollama on the network to its single caller only: no `ports`, no published ports, no host
 * network, so its caller (the filter, or the gateway when the filter is off) is the only way in. Cloud model forwarding is off (on pins that support switching it
 * off, see ollamaEnvs); models live on the encrypted mount.
 */
export class OllamaRuntime extends pulumi.ComponentResource {
    public readonly containerName: pulumi.Output<string>;
    /** host:port other containers on the internal network use to reach Ollama. */
    public readonly internalAddress: pulumi.Output<string>;

    constructor(name: string, args: OllamaRuntimeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:ollama:OllamaRuntime", name, args, opts);
        const child = { parent: this, provider: args.provider };

        const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, child);
        const store = new ModelStoreCheck(
            `${name}-model-store`,
            {
                provider: args.provider,
                hostPath: args.modelsPath,
                probeImage: args.modelStore.probeImage,
                containerName: pulumi.output(args.containerName).apply((n) => `${n}-store`),
                allowUnencrypted: args.modelStore.allowUnencrypted,
                pinnedStack: args.modelStore.pinnedStack,
                provision: args.modelStore.provision,
                logging: args.logging,
            },
            { parent: this },
        );
        const container = new docker.Container(
            `${name}-container`,
            {
                name: args.containerName,
                image: image.imageId,
                ...hardenedContainerArgs("ollama", args.logging, { [ENCRYPTED_STORE_LABEL]: OLLAMA_MODELS_DIR, ...store.ollamaLabels }),
                gpus: dockerGpus(args.gpus),
                envs: pulumi.all([args.image, args.keepAlive]).apply(([image, keepAlive]) => ollamaEnvs(image, keepAlive)),
                networksAdvanced: [{ name: args.callerNetwork, aliases: ["ollama"] }],
                // The source resolves only once the store passed its check: a refused store stops here.
                mounts: [{ type: "bind", source: store.verifiedPath, target: OLLAMA_MODELS_DIR, readOnly: false }],
                readOnly: true,
                tmpfs: { "/tmp": "rw,nosuid,nodev,size=1g" },
                memory: args.memoryLimitMiB,
                ulimits: [{ name: "nofile", soft: 65536, hard: 65536 }],
                healthcheck: { tests: ["CMD", "ollama", "list"], interval: "30s", timeout: "10s", retries: 3, startPeriod: "30s" },
            },
            { ...child, dependsOn: [store] },
        );

        this.containerName = container.name;
        this.internalAddress = pulumi.interpolate`${container.name}:${OLLAMA_PORT}`;
        this.registerOutputs({ containerName: this.containerName, internalAddress: this.internalAddress });
    }
}
