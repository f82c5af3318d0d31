/**
 * NodeSpec: what a GPU node's enclave proxy needs, as plain data, and the gateway's view of the
 * node pool. An enclave proxy is the node's only published socket: it listens on the node's
 * Tailscale address, accepts exactly one client certificate (the gateway's own), and forwards
 * only the allowlisted endpoints (the same ENDPOINTS table as the gateway) to the node's Ollama.
 */
import type { NodePoolSettings } from "../config";
import { ENDPOINTS, type Endpoint } from "./endpoints";
import { checkFingerprint, type SpecErrorType, type Upstream } from "./spec";

/** DNS SAN every enclave certificate carries; the gateway verifies enclaves against this name. */
export const NODE_TLS_NAME = "enclave.zero-trust-ollama.internal";

export interface NodeSpec {
    /** Node name from config (ollama.nodes[].name). */
    readonly name: string;
    /** Where the enclave listens: the node's Tailscale address and the enclave port. */
    readonly listen: Upstream;
    readonly tls: { readonly cert: string; readonly key: string; readonly ca: string };
    /** SHA-1 (lowercase hex) of the gateway's client certificate: the only client admitted. */
    readonly gatewayFingerprintSha1: string;
    readonly endpoints: readonly Endpoint[];
    /** The node's Ollama on its internal network. */
    readonly ollama: Upstream;
    /** Host header sent to Ollama (it checks it). */
    readonly ollamaHost: string;
    readonly maxBodyKiB: number;
    readonly upstreamTimeoutSeconds: number;
    readonly runtimeDir: string;
    readonly accessLog: string;
    readonly errorLog: string;
    /** See GatewayPlacement.workerUser. */
    readonly workerUser?: string;
}

/** Where one enclave proxy runs (container or sandbox). */
export interface NodePlacement {
    readonly listen: Upstream;
    readonly tlsFiles: NodeSpec["tls"];
    readonly ollama: Upstream;
    readonly runtimeDir: string;
    readonly accessLog: string;
    readonly errorLog: string;
    readonly workerUser?: string;
}

export function deriveNodeSpec(
    name: string,
    limits: { readonly maxBodyKiB: number; readonly upstreamTimeoutSeconds: number },
    gatewayFingerprintSha1: string,
    placement: NodePlacement,
): NodeSpec {
    return {
        name,
        listen: placement.listen,
        tls: placement.tlsFiles,
        gatewayFingerprintSha1: gatewayFingerprintSha1.toLowerCase(),
        endpoints: ENDPOINTS,
        ollama: placement.ollama,
        ollamaHost: `${placement.ollama.host}:${placement.ollama.port}`,
        maxBodyKiB: limits.maxBodyKiB,
        upstreamTimeoutSeconds: limits.upstreamTimeoutSeconds,
        runtimeDir: placement.runtimeDir,
        accessLog: placement.accessLog,
        errorLog: placement.errorLog,
        workerUser: placement.workerUser,
    };
}

/** What the enclave renderer needs to hold true; throws `fail` naming the field. */
export function validateNodeSpec(spec: NodeSpec, fail: SpecErrorType): void {
    checkFingerprint(spec.gatewayFingerprintSha1, `node "${spec.name}": gatewayFingerprintSha1`, fail);
    if (spec.endpoints !== ENDPOINTS && spec.endpoints.some((e) => !ENDPOINTS.includes(e))) throw new fail(`node "${spec.name}": endpoints must come from the endpoint table`);
    for (const [k, v] of [["maxBodyKiB", spec.maxBodyKiB], ["upstreamTimeoutSeconds", spec.upstreamTimeoutSeconds]] as const) {
        if (!Number.isInteger(v) || v < 1) throw new fail(`node "${spec.name}": ${k} must be a positive integer (got ${v})`);
    }
}

/** One node as the gateway's upstream pool sees it: its enclave address and the models it serves. */
export interface PoolNode {
    readonly name: string;
    readonly enclave: Upstream;
    readonly models: readonly string[];
}

/** The gateway's node pool (GatewaySpec.nodePool). */
export interface NodePool {
    readonly nodes: readonly PoolNode[];
    /** Model used when the gateway cannot see one (no filter): its nodes take inference. */
    readonly defaultModel: string;
    /** Passive health: a node that failed is left out for this long. */
    readonly failTimeoutSeconds: number;
    /** The gateway's client certificate and key, and the CA the enclaves' certificates chain to. */
    readonly clientTls: { readonly cert: string; readonly key: string; readonly ca: string };
    /**
     * With the filter: the internal listener the filter sends allowed requests to (plain HTTP on
     * the internal network); the gateway picks the node there, by the model the filter names.
     */
    readonly router?: Upstream;
}

/** Build the pool from resolved settings and where each enclave is reachable from the gateway. */
export function deriveNodePool(pool: NodePoolSettings, enclaves: Readonly<Record<string, Upstream>>, clientTls: NodePool["clientTls"], router?: Upstream): NodePool {
    return {
        nodes: pool.nodes.map((n) => {
            const enclave = enclaves[n.name];
            if (!enclave) throw new Error(`no enclave address for node "${n.name}"`);
            return { name: n.name, enclave, models: [...n.models] };
        }),
        defaultModel: pool.defaultModel,
        failTimeoutSeconds: pool.failTimeoutSeconds,
        clientTls,
        router,
    };
}
