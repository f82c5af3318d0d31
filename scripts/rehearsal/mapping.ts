/**
 * How each Docker input the program emits becomes a Docker Engine API call, as one table per
 * resource type. Every input field is either mapped or listed as not applicable here, with the
 * reason; a field (or nested field) in neither list is an error, so a new input can never be
 * dropped silently (test/unit/rehearsal-mapping.test.ts runs every example stack through it).
 */
import type { RecordedResource } from "../lib/mock-program";

export const TYPES = {
    provider: "pulumi:providers:docker",
    network: "docker:index/network:Network",
    volume: "docker:index/volume:Volume",
    remoteImage: "docker:index/remoteImage:RemoteImage",
    image: "docker:index/image:Image",
    container: "docker:index/container:Container",
} as const;

/** A file to copy into a created container before it starts (the provider's `uploads`). */
export interface Upload {
    readonly file: string;
    /** The file's bytes: the provider's `content` (text) or `contentBase64` (binary, e.g. TLS ticket keys). */
    readonly content: Buffer;
    readonly uid: number;
    readonly gid: number;
    readonly mode: number;
}

/** One container as the engine will create it. */
export interface ContainerPlan {
    readonly resourceName: string;
    readonly role?: string;
    /** Engine API body of POST /containers/create (without networks beyond the first). */
    readonly create: Record<string, any>;
    /** Networks in order, with aliases: the first at create time, the rest connected before start. */
    readonly networks: { name: string; aliases: string[] }[];
    readonly uploads: Upload[];
    /** The image input: an image id or digest the rehearsal resolves to a local tag. */
    readonly imageInput: string;
    /** Host paths of bind mounts (the rehearsal substitutes a scratch directory for each). */
    readonly bindSources: string[];
    /**
     * A one-shot container (`attach`): Pulumi waits for it to exit before anything that depends on
     * it is created, so the rehearsal runs it to exit 0 (and fails with its logs otherwise) first.
     */
    readonly runToExit: boolean;
    /** `logs`: the provider keeps the one-shot's output in the state; the rehearsal prints it. */
    readonly keepLogs: boolean;
    /** Resource names of the stack's containers this one depends on (created and started before it). */
    readonly dependsOn: string[];
}

export interface RehearsalPlan {
    readonly networks: { resourceName: string; create: Record<string, any> }[];
    readonly volumes: { resourceName: string; create: Record<string, any> }[];
    /** Pinned references of RemoteImages, by the image id the program hands a container. */
    readonly remoteImages: { resourceName: string; ref: string; imageId: string }[];
    /** Images the engine builds (docker.Image), by the repoDigest the program hands a container. */
    readonly builds: { resourceName: string; imageName: string; context: string; dockerfile: string; repoDigest: string }[];
    readonly containers: ContainerPlan[];
    /** Inputs listed as not applicable that this stack did set, with the reason (printed). */
    readonly notApplied: string[];
}

type Mapper<T> = (value: any, into: T, where: string) => void;
/** A field is mapped, or not applicable with the reason why. */
type Rule<T> = { readonly map: Mapper<T> } | { readonly notApplicable: string };
export type FieldTable<T> = Readonly<Record<string, Rule<T>>>;

class MappingError extends Error {}

/** The resource name of a container's URN (`…$docker:index/container:Container::<name>`). */
const CONTAINER_URN = /(?:\$|::)docker:index\/container:Container::(.+)$/;

/** Fails on a nested key the mapper does not know. */
function only(value: Record<string, unknown>, keys: readonly string[], where: string): void {
    for (const k of Object.keys(value ?? {})) if (!keys.includes(k) && value[k] !== undefined) throw new MappingError(`${where}.${k}: the rehearsal neither maps this input nor lists it as not applicable`);
}

const DURATION = /^(\d+)(ms|s|m|h)$/;
/** "30s" -> nanoseconds, as the Engine API's healthcheck wants. */
export function durationNs(d: string, where: string): number {
    const m = DURATION.exec(d);
    if (!m) throw new MappingError(`${where}: "${d}" is not a duration the rehearsal understands`);
    return Number(m[1]) * { ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }[m[2] as "ms" | "s" | "m" | "h"];
}

interface ContainerDraft {
    create: Record<string, any>;
    host: Record<string, any>;
    networks: { name: string; aliases: string[] }[];
    uploads: Upload[];
    imageInput: string;
    bindSources: string[];
    role?: string;
    notes: string[];
    attach: boolean;
    /** Undefined: the provider's default (true, the container must keep running). */
    mustRun?: boolean;
    keepLogs: boolean;
}

/** Healthchecks run every few seconds here, so a stack is judged in seconds, not minutes. */
export const REHEARSAL_HEALTH_INTERVAL_NS = 2e9;

export const CONTAINER_FIELDS: FieldTable<ContainerDraft> = {
    name: { map: (v, d) => (d.create.name = v) },
    image: { map: (v, d) => (d.imageInput = v) },
    entrypoints: { map: (v, d) => (d.create.Entrypoint = v) },
    command: { map: (v, d) => (d.create.Cmd = v) },
    envs: { map: (v, d) => (d.create.Env = v) },
    user: { map: (v, d) => (d.create.User = v) },
    labels: {
        map: (v: { label: string; value: string }[], d, where) => {
            d.create.Labels = Object.fromEntries(v.map((l, i) => (only(l, ["label", "value"], `${where}[${i}]`), [l.label, l.value])));
            d.role = d.create.Labels["zero-trust-ollama.role"];
        },
    },
    capabilities: {
        map: (v, d, where) => {
            only(v, ["drops", "adds"], where);
            d.host.CapDrop = v.drops;
            d.host.CapAdd = v.adds;
        },
    },
    privileged: { map: (v, d) => (d.host.Privileged = v) },
    securityOpts: { map: (v, d) => (d.host.SecurityOpt = v) },
    readOnly: { map: (v, d) => (d.host.ReadonlyRootfs = v) },
    tmpfs: { map: (v, d) => (d.host.Tmpfs = v) },
    memory: { map: (v, d) => (d.host.Memory = v * 1024 * 1024) },
    ulimits: { map: (v: any[], d, where) => (d.host.Ulimits = v.map((u, i) => (only(u, ["name", "soft", "hard"], `${where}[${i}]`), { Name: u.name, Soft: u.soft, Hard: u.hard }))) },
    restart: { map: (v, d) => (d.host.RestartPolicy = { Name: v }) },
    logDriver: {
        map: (v, d, where) => {
            // No syslog receiver runs here: the engine would refuse to start the container.
            if (v === "syslog") d.notes.push(`${where} syslog not applied: no syslog receiver on this machine, json-file used instead`);
            d.host.LogConfig = { ...(d.host.LogConfig ?? {}), Type: v === "syslog" ? "json-file" : v };
        },
    },
    logOpts: {
        map: (v, d, where) => {
            only(v, ["max-size", "max-file", "tag", "syslog-address", "syslog-format", "mode"], where);
            const syslog = "syslog-address" in v;
            d.host.LogConfig = { ...(d.host.LogConfig ?? {}), Config: syslog ? { tag: v.tag } : v };
        },
    },
    ports: {
        map: (v: any[], d, where) => {
            d.create.ExposedPorts = {};
            d.host.PortBindings = {};
            v.forEach((p, i) => {
                only(p, ["internal", "external", "ip", "protocol"], `${where}[${i}]`);
                const key = `${p.internal}/${p.protocol ?? "tcp"}`;
                d.create.ExposedPorts[key] = {};
                d.host.PortBindings[key] = [{ HostIp: p.ip ?? "", HostPort: p.external === undefined ? "" : String(p.external) }];
            });
        },
    },
    networksAdvanced: {
        map: (v: any[], d, where) => {
            d.networks = v.map((n, i) => (only(n, ["name", "aliases"], `${where}[${i}]`), { name: n.name, aliases: n.aliases ?? [] }));
        },
    },
    mounts: {
        map: (v: any[], d, where) => {
            d.host.Mounts = v.map((m, i) => {
                only(m, ["type", "source", "target", "readOnly"], `${where}[${i}]`);
                if (m.type !== "bind" && m.type !== "volume") throw new MappingError(`${where}[${i}].type: mount type "${m.type}" is not mapped`);
                if (m.type === "bind") d.bindSources.push(m.source);
                return { Type: m.type, Source: m.source, Target: m.target, ReadOnly: m.readOnly === true };
            });
        },
    },
    uploads: {
        map: (v: any[], d, where) => {
            d.uploads = v.map((u, i) => {
                only(u, ["file", "content", "contentBase64", "owner", "group", "permissions"], `${where}[${i}]`);
                if ((u.content === undefined) === (u.contentBase64 === undefined)) throw new MappingError(`${where}[${i}]: exactly one of content and contentBase64 is mapped`);
                return { file: u.file, content: u.contentBase64 === undefined ? Buffer.from(u.content) : Buffer.from(u.contentBase64, "base64"), uid: Number(u.owner ?? 0), gid: Number(u.group ?? 0), mode: parseInt(u.permissions ?? "0644", 8) };
            });
        },
    },
    healthcheck: {
        map: (v, d, where) => {
            only(v, ["tests", "interval", "timeout", "retries", "startPeriod"], where);
            d.create.Healthcheck = {
                Test: v.tests,
                Interval: REHEARSAL_HEALTH_INTERVAL_NS,
                Timeout: durationNs(v.timeout ?? "30s", `${where}.timeout`),
                Retries: v.retries ?? 3,
                StartPeriod: durationNs(v.startPeriod ?? "0s", `${where}.startPeriod`),
            };
        },
    },
    networkMode: { map: (v, d) => (d.host.NetworkMode = v) },
    attach: { map: (v, d) => (d.attach = v === true) },
    mustRun: { map: (v, d) => (d.mustRun = v !== false) },
    logs: { map: (v, d) => (d.keepLogs = v === true) },
    gpus: { notApplicable: "GPU device requests: this machine has no GPU; the Ollama stand-in runs on the CPU" },
};

export const NETWORK_FIELDS: FieldTable<Record<string, any>> = {
    name: { map: (v, c) => (c.Name = v) },
    driver: { map: (v, c) => (c.Driver = v) },
    internal: { map: (v, c) => (c.Internal = v) },
    attachable: { map: (v, c) => (c.Attachable = v) },
    labels: { map: (v: { label: string; value: string }[], c, where) => (c.Labels = Object.fromEntries(v.map((l, i) => (only(l, ["label", "value"], `${where}[${i}]`), [l.label, l.value])))) },
    options: { map: (v, c) => (c.Options = v) },
};

export const VOLUME_FIELDS: FieldTable<Record<string, any>> = {
    name: { map: (v, c) => (c.Name = v) },
    labels: { map: (v: { label: string; value: string }[], c, where) => (c.Labels = Object.fromEntries(v.map((l, i) => (only(l, ["label", "value"], `${where}[${i}]`), [l.label, l.value])))) },
};

export const REMOTE_IMAGE_FIELDS: FieldTable<{ ref?: string }> = {
    name: { map: (v, c) => (c.ref = v) },
    keepLocally: { notApplicable: "the rehearsal's stand-in images are local and always kept" },
};

export const IMAGE_FIELDS: FieldTable<{ imageName?: string; context?: string; dockerfile?: string }> = {
    imageName: { map: (v, c) => (c.imageName = v) },
    build: {
        map: (v, c, where) => {
            only(v, ["context", "dockerfile"], where);
            c.context = v.context;
            c.dockerfile = v.dockerfile;
        },
    },
    skipPush: { notApplicable: "nothing is pushed: the image is built on the local engine" },
    buildOnPreview: { notApplicable: "there is no preview; the rehearsal always builds" },
};

export const PROVIDER_FIELDS: FieldTable<{ host?: string }> = {
    host: { map: (v, c) => (c.host = v) },
    version: { notApplicable: "the provider plugin version; no plugin runs here" },
};

/**
 * `attach` makes the provider wait for the container to exit: one that the engine restarts, or
 * that must keep running, would never let the apply go on. Such a combination is refused rather
 * than rehearsed as something else; so are `logs` without `attach` and `mustRun: false` on a
 * service (the provider would then accept a dead one, which the rehearsal does not).
 */
function checkOneShot(d: ContainerDraft, where: string): void {
    if (d.attach) {
        if (d.mustRun !== false) throw new MappingError(`${where}.mustRun: a container Pulumi waits for (attach) must set mustRun false; it exits`);
        if (d.host.RestartPolicy?.Name !== "no") throw new MappingError(`${where}.restart: a container Pulumi waits for (attach) must not be restarted (restart "no"), got "${d.host.RestartPolicy?.Name ?? "unset"}"`);
    } else {
        if (d.keepLogs) throw new MappingError(`${where}.logs: the provider keeps logs only of an attached container; without attach the rehearsal cannot say what it means`);
        if (d.mustRun === false) throw new MappingError(`${where}.mustRun: false on a service (no attach) would let a dead container pass; the rehearsal does not map it`);
    }
}

/** Applies a table to one resource's inputs; unknown fields fail, not-applicable ones are noted. */
function applyTable<T>(table: FieldTable<T>, inputs: Record<string, any>, into: T, where: string, notes: string[]): void {
    for (const [field, value] of Object.entries(inputs)) {
        if (value === undefined || value === null) continue;
        const rule = table[field];
        if (!rule) throw new MappingError(`${where}.${field}: the rehearsal neither maps this input nor lists it as not applicable`);
        if ("notApplicable" in rule) notes.push(`${where}.${field} not applied: ${rule.notApplicable}`);
        else rule.map(value, into, `${where}.${field}`);
    }
}

/**
 * The rehearsal plan of a mocked program's resources. Throws a MappingError naming the first
 * input it cannot map, or a resource type it does not know.
 */
export function planRehearsal(resources: readonly RecordedResource[], mockImageIds: (r: RecordedResource) => string): RehearsalPlan {
    const plan: RehearsalPlan = { networks: [], volumes: [], remoteImages: [], builds: [], containers: [], notApplied: [] };
    const notes = plan.notApplied;
    for (const r of resources) {
        const where = `${r.name} (${r.type})`;
        if (!r.custom) continue;
        switch (r.type) {
            case TYPES.provider: {
                const p: { host?: string } = {};
                applyTable(PROVIDER_FIELDS, r.inputs, p, where, notes);
                if (p.host && !p.host.startsWith("unix://")) notes.push(`${where}.host "${p.host}" not applied: remote Docker hosts (ssh://) are not reachable here; everything runs on the local engine`);
                break;
            }
            case TYPES.network: {
                const create: Record<string, any> = { CheckDuplicate: true };
                applyTable(NETWORK_FIELDS, r.inputs, create, where, notes);
                plan.networks.push({ resourceName: r.name, create });
                break;
            }
            case TYPES.volume: {
                const create: Record<string, any> = {};
                applyTable(VOLUME_FIELDS, r.inputs, create, where, notes);
                plan.volumes.push({ resourceName: r.name, create });
                break;
            }
            case TYPES.remoteImage: {
                const c: { ref?: string } = {};
                applyTable(REMOTE_IMAGE_FIELDS, r.inputs, c, where, notes);
                plan.remoteImages.push({ resourceName: r.name, ref: c.ref!, imageId: mockImageIds(r) });
                break;
            }
            case TYPES.image: {
                const c: { imageName?: string; context?: string; dockerfile?: string } = {};
                applyTable(IMAGE_FIELDS, r.inputs, c, where, notes);
                plan.builds.push({ resourceName: r.name, imageName: c.imageName!, context: c.context!, dockerfile: c.dockerfile!, repoDigest: mockImageIds(r) });
                break;
            }
            case TYPES.container: {
                const d: ContainerDraft = { create: {}, host: {}, networks: [], uploads: [], imageInput: "", bindSources: [], notes, attach: false, keepLogs: false };
                applyTable(CONTAINER_FIELDS, r.inputs, d, where, notes);
                checkOneShot(d, where);
                const [first] = d.networks;
                plan.containers.push({
                    resourceName: r.name,
                    role: d.role,
                    create: { ...d.create, HostConfig: d.host, NetworkingConfig: first ? { EndpointsConfig: { [first.name]: { Aliases: first.aliases } } } : undefined },
                    networks: d.networks,
                    uploads: d.uploads,
                    imageInput: d.imageInput,
                    bindSources: d.bindSources,
                    runToExit: d.attach,
                    keepLogs: d.keepLogs,
                    dependsOn: r.dependencies.flatMap((urn) => CONTAINER_URN.exec(urn)?.[1] ?? []),
                });
                break;
            }
            default:
                // Other providers' resources (tls, random, azuread, tailscale) hold no Docker object.
                if (r.type.startsWith("docker:") || r.type.startsWith("pulumi:providers:docker")) throw new MappingError(`${where}: the rehearsal does not know this Docker resource type`);
        }
    }
    return plan;
}

export { MappingError };
