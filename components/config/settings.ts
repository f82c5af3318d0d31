/**
 * Views of a parsed config with its defaults resolved, for the components and tools that need
 * one part of it (the session store, the model store and volume checks, the node pool).
 */
import type { VolumeCheckSettings } from "../model-store/volume";
import { DEFAULT_IMAGES, type StackConfig } from "./schema";

/** True when oauth2-proxy runs with the Redis session store (a sign-in provider and sessionStore redis). */
export function usesSessionStore(c: Pick<StackConfig, "identity">): boolean {
    return c.identity.provider !== "none" && c.identity.sessionStore === "redis";
}

/** How every Ollama host's model store is checked (and provisioned), defaults resolved. */
export interface ModelStoreSettings {
    /** ollama.allowUnencryptedModels: skip the check (development stacks only). */
    readonly allowUnencrypted: boolean;
    /** ollama.modelStore.provision. */
    readonly provision?: "fscrypt";
    /** ollama.modelStore.probeImage. */
    readonly probeImage: string;
    /** requirePinnedImages: an opt-out here is a mandatory policy violation. */
    readonly pinnedStack: boolean;
}

// Optional without schema defaults: a stack that does not set them parses to the same config as
// before they existed.
export function modelStoreSettings(c: Pick<StackConfig, "ollama" | "requirePinnedImages">): ModelStoreSettings {
    return {
        allowUnencrypted: c.ollama.allowUnencryptedModels ?? false,
        provision: c.ollama.modelStore?.provision,
        probeImage: c.ollama.modelStore?.probeImage ?? DEFAULT_IMAGES.modelStoreProbe,
        pinnedStack: c.requirePinnedImages,
    };
}

/** How the stack's Docker volumes are checked on their hosts, defaults resolved. */
export function volumeCheckSettings(c: Pick<StackConfig, "docker" | "ollama">): VolumeCheckSettings {
    return { allowUnencrypted: c.docker.allowUnencryptedVolumes ?? false, probeImage: c.ollama.modelStore?.probeImage ?? DEFAULT_IMAGES.modelStoreProbe };
}

/** One configured GPU node, defaults resolved. */
export type NodeConfig = Required<Omit<NonNullable<StackConfig["ollama"]["nodes"]>[number], "modelsPath">> & { readonly modelsPath: string };

/** The node pool (its defaults resolved by the schema); undefined for a stack without `ollama.nodes`. */
export interface NodePoolSettings {
    readonly nodes: readonly NodeConfig[];
    readonly nodeTag: string;
    readonly enclavePort: number;
    /** Model whose nodes take requests when the gateway cannot see the model (no filter, metadata). */
    readonly defaultModel: string;
    /** Seconds a node that failed is left out of the pool (passive health). */
    readonly failTimeoutSeconds: number;
}

/** A node-pool key: the schema resolves its default whenever ollama.nodes is set. */
function resolved<T>(value: T | undefined, key: string): T {
    if (value === undefined) throw new Error(`${key} has no value: a config with ollama.nodes must come from parseStackConfig, whose schema resolves the node-pool defaults`);
    return value;
}

export function nodePoolSettings(c: Pick<StackConfig, "ollama" | "tailscale">): NodePoolSettings | undefined {
    const o = c.ollama;
    if (!o.nodes) return undefined;
    return {
        nodes: o.nodes.map((n, i) => ({ ...n, modelsPath: resolved(n.modelsPath, `ollama.nodes[${i}].modelsPath`) })),
        nodeTag: resolved(c.tailscale.nodeTag, "tailscale.nodeTag"),
        enclavePort: resolved(o.enclavePort, "ollama.enclavePort"),
        defaultModel: resolved(o.defaultModel, "ollama.defaultModel"),
        failTimeoutSeconds: resolved(o.nodeFailTimeoutSeconds, "ollama.nodeFailTimeoutSeconds"),
    };
}
