/**
 * The files of one gateway config generation, as plain data: the rendered config (and, for
 * haproxy, its device maps) with the device allowlist, the server certificate and its key, the
 * device CA and, with a node pool, the gateway's client certificate towards the enclaves. The
 * Gateway component uploads exactly these; everything here is a pure function of resolved values.
 */
import type { NodePoolSettings, StackConfig } from "../config";
import { GATEWAY_CONTAINER_PORT, GATEWAY_KINDS, GATEWAY_RUNTIME_DIR } from "./kinds";
import { deriveNodePool } from "./node-spec";
import { currentFile } from "./reload";
import { deriveGatewaySpec, type GatewayDeviceFacts, type GatewayPlacement, type Upstream } from "./spec";
import { SESSION_TICKET_KEYS_RELATIVE } from "./tickets";

/** Port of the pool router inside the gateway container (internal network; never published). */
export const NODE_ROUTER_PORT = 8480;

/** The gateway's client certificate towards the enclaves, by path relative to a generation. */
const NODE_CLIENT_RELATIVE = { cert: "tls/node-client.crt", key: "tls/node-client.key" };

/** The Gateway's args that its files are made of, every Input resolved. */
export interface GatewayFileArgs {
    /** The validated stack config. */
    readonly config: StackConfig;
    /** Ollama on the internal network (the pool router's place with a node pool). */
    readonly ollama: Upstream;
    /** The prompt filter, when filter.enabled. */
    readonly filter?: Upstream;
    /** oauth2-proxy, when identity.provider is not none. */
    readonly oauth2Proxy?: Upstream;
    /** CA that device certificates must chain to. */
    readonly caCertPem: string;
    /** The gateway's server certificate. */
    readonly serverCertPem: string;
    /** The server certificate's private key. */
    readonly serverKeyPem: string;
    /** ollama.nodes: the pool settings and the gateway's client certificate towards the enclaves. */
    readonly nodePool?: { readonly settings: NodePoolSettings; readonly clientCertPem: string; readonly clientKeyPem: string };
}

/** Where a file goes and who may read it: plain config decides it, before any content is known. */
export interface GatewayFileLayout {
    /** Path relative to a generation directory. */
    readonly relative: string;
    /** `uid` and `gid` of the gateway user, who owns every file. */
    readonly owner: string;
    readonly group: string;
    /** 0444 for what any process in the container may read, 0400 for keys. */
    readonly permissions: "0444" | "0400";
    /** Uploaded as a Pulumi secret: private keys, and the config when it holds API key digests. */
    readonly secret: boolean;
}

export interface GatewayFile extends GatewayFileLayout {
    readonly content: string;
}

/** Every file of a generation for `config`, in upload order, without contents. */
export function gatewayFileLayout(config: StackConfig, withNodePool: boolean): GatewayFileLayout[] {
    const described = GATEWAY_KINDS[config.gateway.kind];
    const [owner, group] = described.container.user.split(":");
    const readable = { owner, group, permissions: "0444", secret: false } as const;
    const privateFile = { owner, group, permissions: "0400", secret: true } as const;
    // With API keys the config holds key digests: then it is uploaded as a secret, like the keys.
    const withApiKeys = config.devices.some((d) => d.apiKey);
    return [
        ...described.files.map((relative) => ({ ...readable, relative, secret: withApiKeys })),
        { ...readable, relative: described.tls.cert },
        { ...readable, relative: described.tls.ca },
        { ...privateFile, relative: described.tls.key },
        ...(withNodePool ? [{ ...readable, relative: NODE_CLIENT_RELATIVE.cert }, { ...privateFile, relative: NODE_CLIENT_RELATIVE.key }] : []),
    ];
}

/** Where the gateway finds everything inside its container: through the `current` link of its config volume. */
function containerPlacement(args: GatewayFileArgs): GatewayPlacement {
    const cfg = args.config;
    const kind = cfg.gateway.kind;
    const root = GATEWAY_KINDS[kind].container.configDir;
    const tls = GATEWAY_KINDS[kind].tls;
    const placement: GatewayPlacement = {
        listen: { host: "0.0.0.0", port: GATEWAY_CONTAINER_PORT },
        tlsFiles: { cert: currentFile(root, tls.cert), key: currentFile(root, tls.key), ca: currentFile(root, tls.ca) },
        ...(cfg.gateway.tlsTicketLifetimeSeconds > 0 ? { sessionTicketKeys: currentFile(root, SESSION_TICKET_KEYS_RELATIVE[kind]) } : {}),
        ollama: args.ollama,
        filter: args.filter,
        oauth2Proxy: args.oauth2Proxy,
        runtimeDir: GATEWAY_RUNTIME_DIR,
        accessLog: "stdout",
        errorLog: "stderr",
    };
    const pool = args.nodePool?.settings;
    if (!pool) return placement;
    return {
        ...placement,
        // Without the filter the gateway's own hop is the router on loopback.
        ollama: { host: "127.0.0.1", port: NODE_ROUTER_PORT },
        nodePool: deriveNodePool(
            pool,
            Object.fromEntries(pool.nodes.map((n) => [n.name, { host: n.tailscaleAddress, port: pool.enclavePort }])),
            { cert: currentFile(root, NODE_CLIENT_RELATIVE.cert), key: currentFile(root, NODE_CLIENT_RELATIVE.key), ca: currentFile(root, tls.ca) },
            { host: "0.0.0.0", port: NODE_ROUTER_PORT },
        ),
    };
}

/** Every file of the generation the gateway container reads for `args` and the enrolled `devices`. */
export function gatewayFiles(args: GatewayFileArgs, devices: GatewayDeviceFacts): GatewayFile[] {
    const described = GATEWAY_KINDS[args.config.gateway.kind];
    const contents: Record<string, string> = {
        ...described.render(deriveGatewaySpec(args.config, devices, containerPlacement(args))),
        [described.tls.cert]: args.serverCertPem,
        [described.tls.ca]: args.caCertPem,
        [described.tls.key]: args.serverKeyPem,
        ...(args.nodePool ? { [NODE_CLIENT_RELATIVE.cert]: args.nodePool.clientCertPem, [NODE_CLIENT_RELATIVE.key]: args.nodePool.clientKeyPem } : {}),
    };
    return gatewayFileLayout(args.config, args.nodePool !== undefined).map((file) => ({ ...file, content: contents[file.relative] }));
}
