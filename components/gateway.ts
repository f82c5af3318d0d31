/**
 * The gateway container: the pinned nginx (or haproxy, per gateway.kind) image running the config
 * rendered from the stack's GatewaySpec, with the server certificate, its key and the device CA.
 * It is the only container with a published port, and it publishes exactly one: on 127.0.0.1 or
 * on the Tailscale IP.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { NodePoolSettings, StackConfig } from "./config";
import { HAPROXY_CONFIG_FILE, HAPROXY_DEVICE_MAPS, renderHaproxyFiles } from "./gateway/haproxy";
import { renderNginxConf } from "./gateway/nginx";
import { deriveNodePool } from "./gateway/node-spec";
import { deriveGatewaySpec, type GatewayPlacement, type GatewaySpec } from "./gateway/spec";
import { hardenedContainerArgs, type LoggingTarget } from "./hardening";

/** Port nginx listens on inside the container: above 1024, so no NET_BIND_SERVICE. */
export const GATEWAY_CONTAINER_PORT = 8443;
/** Volume holding config and TLS material: Docker refuses uploads into a read-only root. */
export const GATEWAY_CONFIG_DIR = "/etc/nginx/zto";
export const GATEWAY_CONFIG_FILE = `${GATEWAY_CONFIG_DIR}/nginx.conf`;
/** tmpfs for the pid file and nginx's temp directories (the root filesystem is read-only). */
export const GATEWAY_RUNTIME_DIR = "/tmp";
/** The `nginx` user of the official image; the gateway never runs as root. */
export const GATEWAY_USER = "101:101";
const TLS_FILES = { cert: `${GATEWAY_CONFIG_DIR}/tls/server.crt`, key: `${GATEWAY_CONFIG_DIR}/tls/server.key`, ca: `${GATEWAY_CONFIG_DIR}/tls/device-ca.crt` };

/** haproxy: the config, its device maps and the TLS files live in one volume directory. */
export const HAPROXY_GATEWAY_CONFIG_DIR = "/usr/local/etc/haproxy/zto";
/** The `haproxy` user of the official image (uid/gid 99). */
export const HAPROXY_GATEWAY_USER = "99:99";
// haproxy 2.6+ reads a certificate's key from `<cert>.key`; there is no separate key directive.
const HAPROXY_TLS_FILES = { cert: `${HAPROXY_GATEWAY_CONFIG_DIR}/tls/server.pem`, key: `${HAPROXY_GATEWAY_CONFIG_DIR}/tls/server.pem.key`, ca: `${HAPROXY_GATEWAY_CONFIG_DIR}/tls/device-ca.crt` };

/** What differs between the nginx and the haproxy container; ports, networks and hardening do not. */
interface GatewayFlavor {
    /** Volume mount point holding every rendered file and the TLS material. */
    readonly configDir: string;
    readonly user: string;
    readonly tlsFiles: GatewayPlacement["tlsFiles"];
    /** Main config file: the one whose text is the component's `renderedConfig` output. */
    readonly configFile: string;
    /** Container paths of every rendered file (configFile included). */
    readonly files: readonly string[];
    /** Every rendered file by container path. */
    readonly render: (spec: GatewaySpec) => Record<string, string>;
    readonly entrypoints: string[];
    readonly command: string[];
    readonly tmpfs?: Record<string, string>;
    readonly healthcheck: string[];
}

const FLAVORS: Record<StackConfig["gateway"]["kind"], GatewayFlavor> = {
    nginx: {
        configDir: GATEWAY_CONFIG_DIR,
        user: GATEWAY_USER,
        tlsFiles: TLS_FILES,
        configFile: GATEWAY_CONFIG_FILE,
        files: [GATEWAY_CONFIG_FILE],
        render: (spec) => ({ [GATEWAY_CONFIG_FILE]: renderNginxConf(spec) }),
        // nginx directly: the image's entrypoint scripts would try to rewrite /etc/nginx.
        entrypoints: ["nginx"],
        command: ["-c", GATEWAY_CONFIG_FILE, "-e", "stderr", "-g", "daemon off;"],
        tmpfs: { [GATEWAY_RUNTIME_DIR]: "rw,noexec,nosuid,nodev,size=64m,mode=1777" },
        // Without a client certificate nginx answers 400: the TLS listener is up and verifying.
        healthcheck: ["CMD-SHELL", `curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:${GATEWAY_CONTAINER_PORT}/ | grep -qx 400`],
    },
    haproxy: {
        configDir: HAPROXY_GATEWAY_CONFIG_DIR,
        user: HAPROXY_GATEWAY_USER,
        tlsFiles: HAPROXY_TLS_FILES,
        configFile: `${HAPROXY_GATEWAY_CONFIG_DIR}/${HAPROXY_CONFIG_FILE}`,
        files: [HAPROXY_CONFIG_FILE, ...Object.values(HAPROXY_DEVICE_MAPS)].map((name) => `${HAPROXY_GATEWAY_CONFIG_DIR}/${name}`),
        render: (spec) => Object.fromEntries(Object.entries(renderHaproxyFiles(spec)).map(([name, text]) => [`${HAPROXY_GATEWAY_CONFIG_DIR}/${name}`, text])),
        // Foreground, no master process: haproxy writes nothing to disk, so no tmpfs either.
        entrypoints: ["haproxy"],
        command: ["-db", "-f", `${HAPROXY_GATEWAY_CONFIG_DIR}/${HAPROXY_CONFIG_FILE}`],
        // haproxy refuses the handshake without a client certificate (no HTTP answer to check),
        // so the check is that the TLS listener accepts connections (busybox nc; not logged).
        healthcheck: ["CMD-SHELL", `nc -w 2 127.0.0.1 ${GATEWAY_CONTAINER_PORT} </dev/null`],
    },
};

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
    /** Internal network: Ollama, the filter and oauth2-proxy. */
    readonly internalNetwork: pulumi.Input<string>;
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

/** Port of the pool router inside the gateway container (internal network; never published). */
export const NODE_ROUTER_PORT = 8480;
const NODE_CLIENT_TLS = { cert: `${GATEWAY_CONFIG_DIR}/tls/node-client.crt`, key: `${GATEWAY_CONFIG_DIR}/tls/node-client.key` };

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

    constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:gateway:Gateway", name, args, opts);
        const cfg = args.config;
        const flavor = FLAVORS[cfg.gateway.kind];
        if (cfg.filter.enabled && !args.filter) throw new Error("filter.enabled is true but the Gateway got no filter address");
        if (cfg.identity.provider !== "none" && !args.oauth2Proxy) throw new Error(`identity.provider is ${cfg.identity.provider} but the Gateway got no oauth2-proxy address`);
        const child = { parent: this, provider: args.provider };

        const files = pulumi
            .all([args.devices, args.ollama.host, args.filter?.host, args.oauth2Proxy?.host])
            .apply(([devices, ollamaHost, filterHost, oauth2Host]) => {
                const placement: GatewayPlacement = {
                    listen: { host: "0.0.0.0", port: GATEWAY_CONTAINER_PORT },
                    tlsFiles: flavor.tlsFiles,
                    ollama: { host: ollamaHost, port: args.ollama.port },
                    filter: filterHost === undefined ? undefined : { host: filterHost, port: args.filter!.port },
                    oauth2Proxy: oauth2Host === undefined ? undefined : { host: oauth2Host, port: args.oauth2Proxy!.port },
                    runtimeDir: GATEWAY_RUNTIME_DIR,
                    accessLog: "stdout",
                    errorLog: "stderr",
                };
                const pool = args.nodePool?.settings;
                const withPool: GatewayPlacement = pool
                    ? {
                          ...placement,
                          // Without the filter the gateway's own hop is the router on loopback.
                          ollama: { host: "127.0.0.1", port: NODE_ROUTER_PORT },
                          nodePool: deriveNodePool(
                              pool,
                              Object.fromEntries(pool.nodes.map((n) => [n.name, { host: n.tailscaleAddress, port: pool.enclavePort }])),
                              { ...NODE_CLIENT_TLS, ca: flavor.tlsFiles.ca },
                              { host: "0.0.0.0", port: NODE_ROUTER_PORT },
                          ),
                      }
                    : placement;
                return flavor.render(deriveGatewaySpec(cfg, devices, withPool));
            });
        this.renderedConfig = files.apply((f) => f[flavor.configFile]);

        const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, child);
        const configVolume = new docker.Volume(`${name}-config`, { name: `${args.containerName}-config`, labels: [{ label: "zero-trust-ollama.volume", value: "gateway-config" }] }, child);
        const withApiKeys = cfg.devices.some((d) => d.apiKey);
        const [uid, gid] = flavor.user.split(":");
        const readable = { owner: uid, group: gid, permissions: "0444" };
        const container = new docker.Container(
            `${name}-container`,
            {
                name: args.containerName,
                image: image.imageId,
                ...hardenedContainerArgs("gateway", args.logging),
                user: flavor.user,
                entrypoints: flavor.entrypoints,
                command: flavor.command,
                networksAdvanced: [{ name: args.edgeNetwork }, { name: args.internalNetwork, aliases: ["gateway"] }],
                ports: [{ internal: GATEWAY_CONTAINER_PORT, external: args.publishPort, ip: pulumi.output(args.publishAddress).apply(checkPublishAddress), protocol: "tcp" }],
                readOnly: true,
                tmpfs: flavor.tmpfs,
                mounts: [{ type: "volume", source: configVolume.name, target: flavor.configDir }],
                uploads: [
                    // With API keys the config holds key digests: then it is uploaded as a secret, like the key.
                    ...flavor.files.map((file) => ({ file, content: withApiKeys ? pulumi.secret(files.apply((f) => f[file])) : files.apply((f) => f[file]), ...readable })),
                    { file: flavor.tlsFiles.cert, content: args.serverCertPem, ...readable },
                    { file: flavor.tlsFiles.ca, content: args.caCertPem, ...readable },
                    { file: flavor.tlsFiles.key, content: pulumi.secret(args.serverKeyPem), owner: uid, group: gid, permissions: "0400" },
                    ...(args.nodePool
                        ? [
                              { file: NODE_CLIENT_TLS.cert, content: args.nodePool.clientCertPem, ...readable },
                              { file: NODE_CLIENT_TLS.key, content: pulumi.secret(args.nodePool.clientKeyPem), owner: uid, group: gid, permissions: "0400" },
                          ]
                        : []),
                ],
                memory: 256,
                ulimits: [{ name: "nofile", soft: 16384, hard: 16384 }],
                healthcheck: {
                    tests: flavor.healthcheck,
                    interval: "30s",
                    timeout: "5s",
                    retries: 3,
                    startPeriod: "10s",
                },
            },
            child,
        );

        this.containerName = container.name;
        this.url = pulumi.output(`https://${cfg.domain}:${args.publishPort}`);
        this.registerOutputs({ containerName: this.containerName, url: this.url, renderedConfig: this.renderedConfig });
    }
}
