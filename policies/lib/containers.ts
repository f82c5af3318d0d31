/**
 * How the rules recognise containers and read their Docker settings. The pack is published and
 * run on its own (`pulumi policy publish` uploads only this directory), so the label names are
 * repeated here rather than imported from the program; test/policy/containers.test.ts asserts
 * they equal components/hardening.ts.
 */
import type { PolicyResource } from "@pulumi/policy";
import { TYPES, listOf, str, type Props } from "./policy-kit";

/** Label naming a container's role (ollama, gateway, filter, oauth2-proxy, enclave). */
export const ROLE_LABEL = "zero-trust-ollama.role";
/**
 * Roles that may publish a port: the gateway on the main host and, with a GPU node pool, each
 * node's enclave proxy (reachable only from the gateway over the tailnet).
 */
export const INGRESS_ROLES: readonly string[] = ["gateway", "enclave"];
/** Label whose value is the container path of the operator's encrypted model store. */
export const ENCRYPTED_STORE_LABEL = "zero-trust-ollama.encrypted-store";
/** Label on Ollama's container saying how its model store was checked on the host (components/model-store). */
export const MODEL_STORE_CHECK_LABEL = "zero-trust-ollama.model-store-check";
/** Its values: the check passed before Ollama was created, or ollama.allowUnencryptedModels waived it. */
export const MODEL_STORE_CHECK = { verified: "verified", skipped: "skipped", skippedPinned: "skipped-in-pinned-stack" } as const;
/** Where Ollama keeps models unless OLLAMA_MODELS says otherwise (~/.ollama/models, run as root). */
export const OLLAMA_DEFAULT_MODELS_DIR = "/root/.ollama/models";

/** Container labels as a map. The provider takes `[{label, value}]`; a plain map is accepted too. */
export function labelsOf(props: Props): Map<string, string> {
    const out = new Map<string, string>();
    const labels = props.labels;
    if (Array.isArray(labels)) {
        for (const l of labels) if (l && typeof l.label === "string") out.set(l.label, String(l.value ?? ""));
    } else if (labels && typeof labels === "object") {
        for (const [k, v] of Object.entries(labels)) out.set(k, String(v));
    }
    return out;
}

export function roleOf(props: Props): string | undefined {
    return labelsOf(props).get(ROLE_LABEL);
}

/** True for references to the Ollama image: ollama/ollama[:tag][@digest], any registry prefix. */
export function isOllamaImageRef(ref: string): boolean {
    return /(^|\/)ollama\/ollama([:@]|$)/.test(ref);
}

/** Resource-level check: by role label, or by an image reference naming Ollama. */
export function isOllamaContainer(props: Props): boolean {
    return roleOf(props) === "ollama" || isOllamaImageRef(str(props.image));
}

const DIGEST = /@sha256:[a-f0-9]{64}$/;
const IMAGE_ID = /^sha256:[a-f0-9]{64}$/;

export function isDigestPinned(ref: string): boolean {
    return DIGEST.test(ref);
}

/** True for a content-addressed image id (what `RemoteImage.imageId` hands a container). */
export function isImageId(ref: string): boolean {
    return IMAGE_ID.test(ref);
}

/** One container as the stack rules see it: its role and the image reference behind an image id. */
export interface ContainerView {
    readonly resource: PolicyResource;
    readonly props: Props;
    readonly role?: string;
    /** The image reference (repo:tag[@digest]); for an image id, the RemoteImage's `name`. */
    readonly imageRef: string;
    readonly isOllama: boolean;
    /** Gateway or enclave: a role allowed to publish a port. */
    readonly isIngress: boolean;
}

/** Every container in the stack, with image ids traced back to the RemoteImage that pulled them. */
export function containersOf(resources: readonly PolicyResource[]): ContainerView[] {
    const refByImageId = new Map<string, string>();
    for (const r of resources) {
        if (r.type !== TYPES.remoteImage) continue;
        const id = str(r.props.imageId);
        if (id) refByImageId.set(id, str(r.props.name));
    }
    return resources
        .filter((r) => r.type === TYPES.container)
        .map((resource) => {
            const props = resource.props;
            const image = str(props.image);
            const imageRef = refByImageId.get(image) ?? image;
            const role = roleOf(props);
            return { resource, props, role, imageRef, isOllama: role === "ollama" || isOllamaImageRef(imageRef), isIngress: role !== undefined && INGRESS_ROLES.includes(role) };
        });
}

export interface PublishedPort {
    readonly internal: number;
    readonly external?: number;
    /** Host address the port binds; "" when unset (Docker then binds every address). */
    readonly ip: string;
    readonly protocol: string;
}

export function portsOf(props: Props): PublishedPort[] {
    return listOf(props.ports).map((p) => ({
        internal: Number(p?.internal),
        external: p?.external === undefined || p?.external === null ? undefined : Number(p.external),
        ip: str(p?.ip),
        protocol: str(p?.protocol) || "tcp",
    }));
}

/** True when the container puts a socket on the host: ports, publish-all or host networking. */
export function publishesToHost(props: Props): boolean {
    return portsOf(props).length > 0 || props.publishAllPorts === true || str(props.networkMode) === "host";
}

/** True for addresses in Tailscale's ranges: 100.64.0.0/10 and fd7a:115c:a1e0::/48. */
export function isTailscaleAddress(addr: string): boolean {
    const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
    if (v4) {
        const [a, b, c, d] = v4.slice(1).map(Number);
        return a === 100 && b >= 64 && b <= 127 && c <= 255 && d <= 255;
    }
    return /^fd7a:115c:a1e0:/i.test(addr);
}

/** Loopback or a Tailscale address; never a wildcard (0.0.0.0, ::, or unset). */
export function isAllowedBindAddress(ip: string): boolean {
    const bare = ip.replace(/^\[(.*)\]$/, "$1");
    return bare === "127.0.0.1" || bare === "::1" || isTailscaleAddress(bare);
}

/**
 * Host paths a container mounts: bind mounts, host-path volumes, and volume mounts whose local
 * driver is told to bind a host device or directory (`driverOptions.device`), the usual way to
 * smuggle a host path past a "no bind mounts" review.
 */
export function hostMountsOf(props: Props): { source: string; target: string; readOnly: boolean }[] {
    const binds = listOf(props.mounts).flatMap((m) => {
        const type = str(m?.type);
        const device = str(m?.volumeOptions?.driverOptions?.device);
        const source = type === "bind" ? str(m.source) : type === "volume" && device ? device : undefined;
        return source === undefined ? [] : [{ source, target: str(m.target), readOnly: m.readOnly === true }];
    });
    const volumes = listOf(props.volumes)
        .filter((v) => str(v?.hostPath))
        .map((v) => ({ source: str(v.hostPath), target: str(v.containerPath), readOnly: v.readOnly === true }));
    return [...binds, ...volumes];
}

/** Names of the Docker networks a container joins (networks_advanced), plus its network mode. */
export function networksOf(props: Props): { names: string[]; mode: string } {
    return { names: listOf(props.networksAdvanced).map((n) => str(n?.name)).filter(Boolean), mode: str(props.networkMode) };
}

/** `cap_sys_admin` and `SYS_ADMIN` are the same capability. */
export function normaliseCapability(cap: string): string {
    return cap.trim().toUpperCase().replace(/^CAP_/, "");
}

/**
 * The release number an Ollama image tag names (`:0.17.4`, `:v0.17.4-rocm`, digest allowed), as
 * [major, minor, patch]; undefined for `latest`, no tag or a bare digest. The pack runs on its own,
 * so this mirrors components/ollama-version.ts; test/policy/containers.test.ts holds them equal.
 */
export function ollamaTagVersion(ref: string): [number, number, number] | undefined {
    const tag = ref.replace(/@sha256:[a-f0-9]{64}$/, "").split("/").pop()!.split(":")[1];
    const m = tag === undefined ? null : /^v?(\d+)\.(\d+)\.(\d+)(-[A-Za-z0-9.-]+)?$/.exec(tag);
    return m ? [+m[1], +m[2], +m[3]] : undefined;
}
