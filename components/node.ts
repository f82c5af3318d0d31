/**
 * One GPU node of the pool (ollama.nodes[]), its own enclave: a Docker provider for the node's
 * host (ssh:// or the local socket), the node's internal and edge networks, Ollama with the same
 * invariants as the single-node stack (OllamaRuntime: no host port, internal network only, GPU,
 * encrypted model store), and the enclave proxy, the node's only published socket: on the node's
 * Tailscale address, mTLS admitting only the gateway's client certificate, forwarding only the
 * allowlisted endpoints to this node's Ollama. Children are named by node name, so removing a
 * node from config removes exactly its resources.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { checkPublishAddress } from "./gateway";
import { renderEnclaveConf } from "./gateway/enclave";
import { deriveNodeSpec } from "./gateway/node-spec";
import { hardenedContainerArgs, type LoggingTarget } from "./hardening";
import { Network } from "./network";
import type { ModelStoreSettings } from "./config";
import { checkedVolume, type VolumeCheckSettings } from "./model-store/volume";
import { OLLAMA_PORT, OllamaRuntime, type GpuRequest } from "./ollama";

/** Port the enclave nginx listens on inside its container (above 1024: no NET_BIND_SERVICE). */
export const ENCLAVE_CONTAINER_PORT = 8443;
export const ENCLAVE_CONFIG_DIR = "/etc/nginx/zto";
export const ENCLAVE_CONFIG_FILE = `${ENCLAVE_CONFIG_DIR}/nginx.conf`;
const ENCLAVE_TLS_FILES = { cert: `${ENCLAVE_CONFIG_DIR}/tls/enclave.crt`, key: `${ENCLAVE_CONFIG_DIR}/tls/enclave.key`, ca: `${ENCLAVE_CONFIG_DIR}/tls/ca.crt` };
/** The `nginx` user of the official image. */
const ENCLAVE_USER = "101:101";

export interface GpuNodeArgs {
    /** Docker host of the node: unix:///var/run/docker.sock or ssh://user@host. */
    readonly dockerHost: string;
    /** Prefix of the node's Docker object names (stack and node name). */
    readonly namePrefix: string;
    /** Pinned Ollama image reference. */
    readonly ollamaImage: pulumi.Input<string>;
    /** Pinned nginx image for the enclave proxy (the gateway's nginx image). */
    readonly enclaveImage: pulumi.Input<string>;
    /** GPUs to reserve on this node. */
    readonly gpus: GpuRequest;
    /** Host path of the node's encrypted model store. */
    readonly modelsPath: string;
    /** How the node's model store is checked (and provisioned) before its Ollama is created. */
    readonly modelStore: ModelStoreSettings;
    /** How the enclave's config volume is checked for encryption at rest before its key is written. */
    readonly volumeCheck: VolumeCheckSettings;
    /** Memory limit of the node's Ollama container in MiB. */
    readonly memoryLimitMiB: number;
    /** How long Ollama keeps a model loaded after use, e.g. 5m. */
    readonly keepAlive: string;
    /** The node's Tailscale address: the only address the enclave publishes on. */
    readonly tailscaleAddress: string;
    /** Host port of the enclave proxy (ollama.enclavePort). */
    readonly enclavePort: number;
    /** CA the gateway's client certificate chains to. */
    readonly caCertPem: pulumi.Input<string>;
    /** The enclave's server certificate and key (secret), from the Pki. */
    readonly serverCertPem: pulumi.Input<string>;
    /** The enclave's server key (a secret). */
    readonly serverKeyPem: pulumi.Input<string>;
    /** SHA-1 of the gateway's client certificate: the only client the enclave admits. */
    readonly gatewayFingerprintSha1: pulumi.Input<string>;
    /** Request body cap in KiB (gateway.maxBodyKiB). */
    readonly maxBodyKiB: number;
    /** Read/send timeout towards Ollama in seconds (gateway.upstreamTimeoutSeconds). */
    readonly upstreamTimeoutSeconds: number;
    /** Where container logs go. */
    readonly logging: LoggingTarget;
}

export class GpuNode extends pulumi.ComponentResource {
    /** The node's Ollama container name (on the node's internal network). */
    public readonly ollamaContainerName: pulumi.Output<string>;
    /** The rendered enclave nginx.conf (no secrets: a fingerprint, addresses and the allowlist). */
    public readonly enclaveConfig: pulumi.Output<string>;

    constructor(name: string, args: GpuNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:node:GpuNode", name, args, opts);
        const provider = new docker.Provider(`${name}-docker`, { host: args.dockerHost }, { parent: this });
        const child = { parent: this, provider };

        const network = new Network(`${name}-network`, { provider, namePrefix: args.namePrefix, callees: ["ollama"] }, { parent: this });
        const ollama = new OllamaRuntime(
            `${name}-ollama`,
            {
                provider,
                image: args.ollamaImage,
                gpus: args.gpus,
                modelsPath: args.modelsPath,
                modelStore: args.modelStore,
                callerNetwork: network.hopTo("ollama").name,
                containerName: `${args.namePrefix}-ollama`,
                memoryLimitMiB: args.memoryLimitMiB,
                keepAlive: args.keepAlive,
                logging: args.logging,
            },
            { parent: this },
        );

        this.enclaveConfig = pulumi.all([ollama.containerName, args.gatewayFingerprintSha1]).apply(([ollamaHost, fingerprint]) =>
            renderEnclaveConf(
                deriveNodeSpec(name, { maxBodyKiB: args.maxBodyKiB, upstreamTimeoutSeconds: args.upstreamTimeoutSeconds }, fingerprint, {
                    listen: { host: "0.0.0.0", port: ENCLAVE_CONTAINER_PORT },
                    tlsFiles: ENCLAVE_TLS_FILES,
                    ollama: { host: ollamaHost, port: OLLAMA_PORT },
                    runtimeDir: "/tmp",
                    accessLog: "stdout",
                    errorLog: "stderr",
                }),
            ),
        );

        const image = new docker.RemoteImage(`${name}-enclave-image`, { name: args.enclaveImage, keepLocally: true }, child);
        const configCheck = checkedVolume(this, `${name}-enclave-config`, { provider, volumeName: `${args.namePrefix}-enclave-config`, role: "enclave-config", holds: "the enclave's config and TLS key", consumer: "The enclave", settings: args.volumeCheck, logging: args.logging });
        const [uid, gid] = ENCLAVE_USER.split(":");
        const readable = { owner: uid, group: gid, permissions: "0444" };
        new docker.Container(
            `${name}-enclave`,
            {
                name: `${args.namePrefix}-enclave`,
                image: image.imageId,
                ...hardenedContainerArgs("enclave", args.logging),
                user: ENCLAVE_USER,
                entrypoints: ["nginx"],
                command: ["-c", ENCLAVE_CONFIG_FILE, "-e", "stderr", "-g", "daemon off;"],
                networksAdvanced: [{ name: network.edge.name }, { name: network.hopTo("ollama").name }],
                // The one published socket of the node: its Tailscale address only.
                ports: [{ internal: ENCLAVE_CONTAINER_PORT, external: args.enclavePort, ip: checkPublishAddress(args.tailscaleAddress), protocol: "tcp" }],
                readOnly: true,
                tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=64m,mode=1777" },
                mounts: [{ type: "volume", source: configCheck.verifiedName, target: ENCLAVE_CONFIG_DIR }],
                uploads: [
                    { file: ENCLAVE_CONFIG_FILE, content: this.enclaveConfig, ...readable },
                    { file: ENCLAVE_TLS_FILES.cert, content: args.serverCertPem, ...readable },
                    { file: ENCLAVE_TLS_FILES.ca, content: args.caCertPem, ...readable },
                    { file: ENCLAVE_TLS_FILES.key, content: pulumi.secret(args.serverKeyPem), owner: uid, group: gid, permissions: "0400" },
                ],
                memory: 256,
                ulimits: [{ name: "nofile", soft: 16384, hard: 16384 }],
                // Without a client certificate nginx answers 400: the listener is up and verifying.
                healthcheck: { tests: ["CMD-SHELL", `curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:${ENCLAVE_CONTAINER_PORT}/ | grep -qx 400`], interval: "30s", timeout: "5s", retries: 3, startPeriod: "10s" },
            },
            child,
        );

        this.ollamaContainerName = ollama.containerName;
        this.registerOutputs({ ollamaContainerName: this.ollamaContainerName, enclaveConfig: this.enclaveConfig });
    }
}
