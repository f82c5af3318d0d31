/**
 * The gateway container: the pinned nginx (or haproxy, per gateway.kind) image running the config
 * rendered from the stack's GatewaySpec, with the server certificate, its key and the device CA.
 * It is the only container with a published port, and it publishes exactly one: on 127.0.0.1 or
 * on the Tailscale IP.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { volumeCheckSettings, type NodePoolSettings, type StackConfig } from "./config";
import { gatewayFileLayout, gatewayFiles } from "./gateway/files";
import { containerConfigFile, GATEWAY_CONTAINER_PORT, GATEWAY_KINDS } from "./gateway/kinds";
import { configWriterScript, CURRENT_LINK, gatewaySupervisorScript, generationFile, generationId } from "./gateway/reload";
import { missingBackend } from "./gateway/spec";
import { SESSION_TICKET_KEYS_RELATIVE, SESSION_TICKET_RANDOM_BYTES, sessionTicketKeyFile } from "./gateway/tickets";
import { hardenedContainerArgs, type LoggingTarget } from "./hardening";
import { checkedVolume } from "./model-store/volume";

export { GATEWAY_CONFIG_DIR, GATEWAY_CONTAINER_PORT, GATEWAY_RUNTIME_DIR, GATEWAY_USER, HAPROXY_GATEWAY_CONFIG_DIR, HAPROXY_GATEWAY_USER } from "./gateway/kinds";
/** Where nginx reads its config: through the `current` link, so a new generation needs no new container. */
export const GATEWAY_CONFIG_FILE = containerConfigFile("nginx");
/**
 * The config writer runs as root with every capability dropped: the volume's root directory is
 * root's (Docker creates it), and the writer only flips a link and removes old generations there.
 * It has no network and exits when done.
 */
export const CONFIG_WRITER_USER = "0:0";

/** A neighbour on the internal network: its container (DNS) name and port. */
export interface GatewayNeighbour {
    readonly host: pulumi.Input<string>;
    readonly port: number;
}

export interface GatewayArgs {
    /** Docker provider of the host the stack runs on. */
    readonly provider: docker.Provider;
    /** Pinned gateway image reference (nginx or haproxy, matching gateway.kind). */
    readonly image: pulumi.Input<string>;
    /** The validated stack config the spec is derived from (plain data). */
    readonly config: StackConfig;
    /** Certificate facts per device name, from the Pki (fingerprints drive the allowlist). */
    readonly devices: pulumi.Input<Record<string, { fingerprintSha1: string; serial: string }>>;
    /** CA that device certificates must chain to. */
    readonly caCertPem: pulumi.Input<string>;
    /** The gateway's server certificate. */
    readonly serverCertPem: pulumi.Input<string>;
    /** The server certificate's private key (a secret). */
    readonly serverKeyPem: pulumi.Input<string>;
    /** Edge network: the one the port is published on. */
    readonly edgeNetwork: pulumi.Input<string>;
    /** Hop networks to the gateway's backends (filter or Ollama, oauth2-proxy), one per backend. */
    readonly backendNetworks: readonly pulumi.Input<string>[];
    /** Container name on the host. */
    readonly containerName: string;
    /** Host address the single port is published on: 127.0.0.1 or the server's Tailscale IP. */
    readonly publishAddress: pulumi.Input<string>;
    /** Host port clients connect to (gateway.port). */
    readonly publishPort: number;
    /** Ollama on the internal network. */
    readonly ollama: GatewayNeighbour;
    /** The prompt filter, required when filter.enabled. */
    readonly filter?: GatewayNeighbour;
    /** oauth2-proxy, required when identity.provider is not none. */
    readonly oauth2Proxy?: GatewayNeighbour;
    /** Where container logs (the JSON access log on stdout) go. */
    readonly logging: LoggingTarget;
    /** ollama.nodes: the GPU node pool the gateway routes to (nginx only). */
    readonly nodePool?: GatewayNodePoolArgs;
}

export { NODE_ROUTER_PORT } from "./gateway/files";

export interface GatewayNodePoolArgs {
    /** The resolved pool settings (nodes, models, default model, fail timeout). */
    readonly settings: NodePoolSettings;
    /** The gateway's client certificate towards the enclaves, and its key (secret). */
    readonly clientCertPem: pulumi.Input<string>;
    readonly clientKeyPem: pulumi.Input<string>;
}

/** Addresses a host may publish on: loopback, or the Tailscale ranges; never a wildcard. */
export function checkPublishAddress(address: string): string {
    if (address === "0.0.0.0" || address === "::" || address === "" || address === "[::]") {
        throw new Error(`gateway publish address "${address}" would expose the gateway on every interface; use 127.0.0.1 or the Tailscale IP`);
    }
    return address;
}

export class Gateway extends pulumi.ComponentResource {
    public readonly containerName: pulumi.Output<string>;
    /** URL clients use: https://<domain>:<port>. */
    public readonly url: pulumi.Output<string>;
    /** The rendered nginx.conf or haproxy.cfg: fingerprints, names, limits and, for apiKey devices, key digests. */
    public readonly renderedConfig: pulumi.Output<string>;
    /** Id of the config generation the writer put in force (a digest of every file in it). */
    public readonly configGeneration: pulumi.Output<string>;

    constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:gateway:Gateway", name, args, opts);
        const cfg = args.config;
        const described = GATEWAY_KINDS[cfg.gateway.kind];
        const configFile = containerConfigFile(cfg.gateway.kind);
        const missing = missingBackend(cfg, args, "the Gateway");
        if (missing) throw new Error(missing);
        const child = { parent: this, provider: args.provider };
        const root = described.container.configDir;

        const files = pulumi
            .all([args.devices, args.ollama.host, args.filter?.host, args.oauth2Proxy?.host, pulumi.all([args.caCertPem, args.serverCertPem, args.serverKeyPem, args.nodePool?.clientCertPem, args.nodePool?.clientKeyPem])])
            .apply(([devices, ollamaHost, filterHost, oauth2Host, [caCertPem, serverCertPem, serverKeyPem, clientCertPem, clientKeyPem]]) =>
                gatewayFiles(
                    {
                        config: cfg,
                        ollama: { host: ollamaHost, port: args.ollama.port },
                        filter: filterHost === undefined ? undefined : { host: filterHost, port: args.filter!.port },
                        oauth2Proxy: oauth2Host === undefined ? undefined : { host: oauth2Host, port: args.oauth2Proxy!.port },
                        caCertPem,
                        serverCertPem,
                        serverKeyPem,
                        nodePool: args.nodePool ? { settings: args.nodePool.settings, clientCertPem: clientCertPem!, clientKeyPem: clientKeyPem! } : undefined,
                    },
                    devices,
                ),
            );
        // One output per file, secret exactly where the layout says so: they all come out of one
        // apply over the private keys, whose secrecy would otherwise mark every file.
        const contentOf = (relative: string) => files.apply((all) => all.find((f) => f.relative === relative)!.content);
        const generationFiles = gatewayFileLayout(cfg, args.nodePool !== undefined).map((f) => ({ ...f, content: f.secret ? pulumi.secret(contentOf(f.relative)) : pulumi.unsecret(contentOf(f.relative)) }));
        this.renderedConfig = pulumi.unsecret(contentOf(described.configFile));

        const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, child);
        // Checked before the writer puts the server's TLS key into it: a plain-disk volume stops here.
        const configCheck = checkedVolume(this, `${name}-config`, { provider: args.provider, volumeName: `${args.containerName}-config`, role: "gateway-config", holds: "the gateway's config and TLS key", consumer: "The gateway", settings: volumeCheckSettings(cfg), logging: args.logging });
        const [uid, gid] = described.container.user.split(":");
        const privateFile = { owner: uid, group: gid, permissions: "0400" };

        // The id digests every file and the image (another binary may read the same text
        // differently). A truncated SHA-256 discloses nothing of the keys it covers, so it is
        // shown in plain text: it names the writer and the directory operators look for.
        const generation = pulumi.unsecret(
            pulumi
                .all([image.imageId, ...generationFiles.map((f) => pulumi.output(f.content))])
                .apply(([imageId, ...contents]) => generationId({ "#image": imageId, ...Object.fromEntries(generationFiles.map((f, i) => [f.relative, contents[i]])) })),
        );

        // Session ticket keys: fresh random bytes for every generation (the generation is their
        // keeper), uploaded by that generation's writer; a secret in state, never an output.
        const ticketKeys = cfg.gateway.tlsTicketLifetimeSeconds > 0
            ? new random.RandomBytes(`${name}-session-ticket-keys`, { length: SESSION_TICKET_RANDOM_BYTES[cfg.gateway.kind], keepers: { generation } }, { parent: this })
            : undefined;
        const ticketUpload = ticketKeys
            ? [{ relative: SESSION_TICKET_KEYS_RELATIVE[cfg.gateway.kind], contentBase64: pulumi.secret(ticketKeys.base64.apply((b64) => sessionTicketKeyFile(cfg.gateway.kind, Buffer.from(b64, "base64")).toString("base64"))), ...privateFile }]
            : [];

        // The writer is the only resource an enrol, revoke or config edit replaces: a one-shot
        // container that receives the new generation as uploads into the volume, flips `current`
        // to it and exits. Its name carries the generation, so the new writer is created before
        // the old one is deleted; the gateway container's inputs never change.
        const writer = new docker.Container(
            `${name}-config-writer`,
            {
                name: pulumi.interpolate`${args.containerName}-config-${generation}`,
                image: image.imageId,
                ...hardenedContainerArgs("gateway-config", args.logging),
                // One shot: it must not be restarted, and Pulumi waits for it to finish.
                restart: "no",
                mustRun: false,
                attach: true,
                logs: true,
                user: CONFIG_WRITER_USER,
                networkMode: "none",
                readOnly: true,
                entrypoints: ["/bin/sh", "-c"],
                command: [configWriterScript(root), "zto-config-writer", generation],
                mounts: [{ type: "volume", source: configCheck.verifiedName, target: root }],
                uploads: [...generationFiles.map(({ relative, content, owner, group, permissions }) => ({ relative, content, owner, group, permissions })), ...ticketUpload].map(({ relative, ...upload }) => ({ file: generation.apply((g) => generationFile(root, g, relative)), ...upload })),
                memory: 32,
            },
            child,
        );
        this.configGeneration = pulumi.all([generation, writer.exitCode]).apply(([g, exitCode]) => {
            // Unknown under preview and mocks; a failed flip leaves the previous generation in force.
            if (typeof exitCode === "number" && exitCode !== 0) {
                void pulumi.log.error(`the gateway config writer exited with status ${exitCode}: generation ${g} is NOT in force and the gateway still serves the previous one; see the writer's logs (docker logs ${args.containerName}-config-${g})`, writer);
            }
            return g;
        });

        const container = new docker.Container(
            `${name}-container`,
            {
                name: args.containerName,
                image: image.imageId,
                ...hardenedContainerArgs("gateway", args.logging),
                user: described.container.user,
                // The supervisor runs the binary and reloads it in place when `current` moves.
                entrypoints: ["/bin/sh", "-c"],
                command: [gatewaySupervisorScript({ kind: cfg.gateway.kind, link: `${root}/${CURRENT_LINK}`, run: described.run(configFile, { errorLog: "stderr" }), check: described.check(configFile, { errorLog: "stderr" }) }), "zto-gateway"],
                networksAdvanced: [{ name: args.edgeNetwork }, ...args.backendNetworks.map((name) => ({ name, aliases: ["gateway"] }))],
                ports: [{ internal: GATEWAY_CONTAINER_PORT, external: args.publishPort, ip: pulumi.output(args.publishAddress).apply(checkPublishAddress), protocol: "tcp" }],
                readOnly: true,
                tmpfs: described.container.tmpfs,
                mounts: [{ type: "volume", source: configCheck.verifiedName, target: root, readOnly: true }],
                memory: 256,
                ulimits: [{ name: "nofile", soft: 16384, hard: 16384 }],
                healthcheck: {
                    tests: described.container.healthcheck,
                    interval: "30s",
                    timeout: "5s",
                    retries: 3,
                    startPeriod: "10s",
                },
            },
            // The first generation must be in place before the gateway starts; later writers
            // replace the writer only (a dependency orders, it never replaces).
            { ...child, dependsOn: [writer] },
        );

        this.containerName = container.name;
        this.url = pulumi.output(`https://${cfg.domain}:${args.publishPort}`);
        this.registerOutputs({ containerName: this.containerName, url: this.url, renderedConfig: this.renderedConfig, configGeneration: this.configGeneration });
    }
}
