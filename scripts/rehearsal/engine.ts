/**
 * Creates a rehearsal plan on the local Docker engine through its API (dockerode), in dependency
 * order (images, networks, volumes, containers with their uploads, then start), and removes
 * everything it created, in reverse, on teardown.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import * as path from "node:path";
import Docker from "dockerode";
import type { ContainerPlan, RehearsalPlan, Upload } from "./mapping";
import { baseImage, ensureStandInImages, nodeBuildBase } from "./images";

/** A minimal ustar archive: directories and files with owner and mode (what `uploads` set). */
export function tarOf(entries: { name: string; content?: Buffer; uid: number; gid: number; mode: number }[]): Buffer {
    const blocks: Buffer[] = [];
    for (const e of entries) {
        const h = Buffer.alloc(512);
        const dir = e.content === undefined;
        const name = e.name.replace(/^\/+/, "") + (dir ? "/" : "");
        if (Buffer.byteLength(name) > 100) throw new Error(`upload path too long for the rehearsal's tar writer: ${name}`);
        h.write(name, 0);
        const oct = (n: number, len: number) => n.toString(8).padStart(len - 1, "0") + "\0";
        h.write(oct(e.mode, 8), 100);
        h.write(oct(e.uid, 8), 108);
        h.write(oct(e.gid, 8), 116);
        h.write(oct(dir ? 0 : e.content!.length, 12), 124);
        h.write(oct(0, 12), 136);
        h.write("        ", 148);
        h.write(dir ? "5" : "0", 156);
        h.write("ustar\0" + "00", 257);
        let sum = 0;
        for (const b of h) sum += b;
        h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
        blocks.push(h);
        if (!dir) blocks.push(e.content!, Buffer.alloc((512 - (e.content!.length % 512)) % 512));
    }
    blocks.push(Buffer.alloc(1024));
    return Buffer.concat(blocks);
}

/**
 * Uploads as archives, one per mount they land in, paths relative to the mount: Docker refuses to
 * copy into a read-only root filesystem even when the file's directory is a volume, so the copy
 * targets the mount itself. Parent directories inside the mount are root-owned, 0755.
 */
export function uploadArchives(uploads: readonly Upload[], mountTargets: readonly string[], readOnlyRoot: boolean): { path: string; archive: Buffer }[] {
    const byMount = new Map<string, Upload[]>();
    for (const u of uploads) {
        const mount = [...mountTargets].sort((a, b) => b.length - a.length).find((t) => u.file.startsWith(`${t.replace(/\/$/, "")}/`));
        const at = mount ?? "/";
        if (at === "/" && readOnlyRoot) throw new Error(`upload ${u.file} is on the read-only root filesystem (no mount holds it); Docker would refuse it`);
        byMount.set(at, [...(byMount.get(at) ?? []), u]);
    }
    return [...byMount].map(([at, list]) => {
        const rel = (f: string) => path.posix.relative(at, f);
        const dirs = new Set<string>();
        for (const u of list) for (let d = path.posix.dirname(rel(u.file)); d !== "." && d !== "/"; d = path.posix.dirname(d)) dirs.add(d);
        return {
            path: at,
            archive: tarOf([
                ...[...dirs].sort().map((d) => ({ name: d, uid: 0, gid: 0, mode: 0o755 })),
                ...list.map((u) => ({ name: rel(u.file), content: u.content, uid: u.uid, gid: u.gid, mode: u.mode })),
            ]),
        };
    });
}

/** The build context of filter/Dockerfile: exactly the files its `*`-then-`!path` dockerignore admits. */
function buildContext(context: string, dockerfile: string): Buffer {
    const ignoreFile = `${dockerfile}.dockerignore`;
    const rules = readFileSync(ignoreFile, "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    if (rules[0] !== "*" || rules.slice(1).some((r) => !r.startsWith("!"))) throw new Error(`${ignoreFile}: the rehearsal understands only "*" followed by "!path" lines`);
    const files: string[] = [];
    const walk = (rel: string) => (statSync(path.join(context, rel)).isDirectory() ? readdirSync(path.join(context, rel)).forEach((f) => walk(path.posix.join(rel, f))) : files.push(rel));
    for (const r of rules.slice(1)) walk(r.slice(1).replace(/\/$/, ""));
    const dfName = path.relative(context, dockerfile);
    return tarOf([...files, dfName].map((f) => ({ name: f, content: readFileSync(path.join(context, f)), uid: 0, gid: 0, mode: 0o644 })));
}

/** The open-files hard limit of this process (dockerd's is no higher when we started it). */
function hardNofile(): number {
    const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m && m[1] !== "unlimited" ? Number(m[1]) : Infinity;
}

/** A container cannot raise nofile above the engine's hard limit: clamp it, and say so. */
function clampUlimit(u: { Name: string; Soft: number; Hard: number }, log: (line: string) => void, container: string) {
    const max = hardNofile();
    if (u.Name !== "nofile" || u.Hard <= max) return u;
    log(`rehearse: ${container}.ulimits nofile ${u.Soft}/${u.Hard} clamped to ${max}: this machine's hard limit`);
    return { ...u, Soft: Math.min(u.Soft, max), Hard: max };
}

/** Label on every object a rehearsal creates, valued with its stack name: clean-up goes by it. */
export const REHEARSAL_LABEL = "zero-trust-ollama.rehearsal";
/** Label on the filter images the rehearsal built, valued with the digest of their build input. */
const BUILD_LABEL = "zero-trust-ollama.rehearsal.build";

export interface DeployedContainer {
    readonly plan: ContainerPlan;
    readonly name: string;
    readonly id: string;
}

export interface Deployed {
    readonly docker: Docker;
    /** The stack name every object is labelled with. */
    readonly owner: string;
    /** Containers in start order (one-shots included, already exited 0). */
    readonly containers: DeployedContainer[];
    readonly networks: string[];
    readonly volumes: string[];
    /** Image input (id or digest the program hands a container) -> local tag. */
    readonly images: Map<string, string>;
    /** Tags this rehearsal put on a shared build (removed on teardown; the build stays cached). */
    readonly tags: string[];
    /** Seconds the image work (stand-ins, filter build) took. */
    readonly imageSeconds: number;
}

async function followBuild(docker: Docker, stream: NodeJS.ReadableStream): Promise<void> {
    await new Promise<void>((resolve, reject) =>
        docker.modem.followProgress(stream, (err: Error | null, out: any[]) => {
            const failed = out?.find((o) => o.error);
            if (err || failed) reject(new Error(`image build failed: ${err?.message ?? failed.error}`));
            else resolve();
        }),
    );
}

/** stdout and stderr of a container, demultiplexed (no TTY: 8-byte frame headers). */
export function demuxLogs(raw: Buffer): string {
    const parts: Buffer[] = [];
    for (let at = 0; at + 8 <= raw.length; ) {
        const size = raw.readUInt32BE(at + 4);
        parts.push(raw.subarray(at + 8, at + 8 + size));
        at += 8 + size;
    }
    return Buffer.concat(parts).toString("utf8");
}

export async function containerLogs(docker: Docker, id: string, tail?: number): Promise<string> {
    const raw = (await docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false, ...(tail ? { tail } : {}) })) as unknown as Buffer;
    return demuxLogs(raw).trim();
}

/**
 * The stand-in images and the engine-built images of a plan. A build is tagged once under the
 * digest of its context (the next rehearsal finds it and builds nothing), then under the name
 * the program gives it; teardown removes only that second tag.
 */
async function prepareImages(docker: Docker, plan: Pick<RehearsalPlan, "remoteImages" | "builds">, log: (line: string) => void): Promise<{ images: Map<string, string>; tags: string[]; seconds: number }> {
    const t0 = Date.now();
    const standIns = ensureStandInImages(plan.remoteImages.map((i) => i.ref), log);
    const images = new Map<string, string>(plan.remoteImages.map((i) => [i.imageId, standIns.get(i.ref)!]));
    const tags: string[] = [];
    for (const b of plan.builds) {
        // The build stage gets the toolchain, the runtime stage the plain base (no compiler shipped).
        const buildargs = { NODE_IMAGE: baseImage(log), BUILD_IMAGE: nodeBuildBase(log) };
        const context = buildContext(b.context, b.dockerfile);
        const digest = createHash("sha256").update(context).update(JSON.stringify(buildargs)).digest("hex").slice(0, 16);
        const cached = `zto-rehearsal/build-${path.basename(path.dirname(b.dockerfile))}:${digest}`;
        const have = await docker.getImage(cached).inspect().catch(() => undefined);
        if (have?.Config?.Labels?.[BUILD_LABEL] === digest) log(`images: ${cached} (from ${path.relative(b.context, b.dockerfile)}) cached`);
        else {
            const tb = Date.now();
            const stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, { t: cached, dockerfile: path.relative(b.context, b.dockerfile), buildargs, labels: { [BUILD_LABEL]: digest }, rm: true, forcerm: true });
            await followBuild(docker, stream);
            log(`images: build ${cached} from ${path.relative(b.context, b.dockerfile)} took ${((Date.now() - tb) / 1000).toFixed(1)} s`);
        }
        const [repo, tag] = splitTag(b.imageName);
        await docker.getImage(cached).tag({ repo, tag });
        tags.push(b.imageName);
        images.set(b.repoDigest, b.imageName);
    }
    return { images, tags, seconds: (Date.now() - t0) / 1000 };
}

function splitTag(ref: string): [string, string] {
    const at = ref.lastIndexOf(":");
    return at > ref.lastIndexOf("/") ? [ref.slice(0, at), ref.slice(at + 1)] : [ref, "latest"];
}

/** The scratch directory a container's bind mount of `source` gets instead (the host path does not exist here). */
export function bindScratchDir(scratch: string, resourceName: string, source: string): string {
    return path.join(scratch, "binds", resourceName, source.replace(/[^A-Za-z0-9]+/g, "_"));
}

/** How long a one-shot container may run before the rehearsal gives up on it (a loaded machine). */
export const RUN_TO_EXIT_TIMEOUT_MS = 120_000;

/**
 * Creates one container as the provider does (create, connect its other networks, copy its
 * uploads, start) and, for a one-shot, waits for it to exit: exit 0 or an error carrying its logs.
 * Every container it depends on must already be in `ready`.
 */
async function startContainer(d: Deployed, c: ContainerPlan, scratch: string, extraEnv: readonly string[], ready: ReadonlySet<string>, log: (line: string) => void): Promise<DeployedContainer> {
    const { docker } = d;
    const missing = c.dependsOn.filter((dep) => !ready.has(dep));
    if (missing.length) throw new Error(`${c.resourceName}: depends on ${missing.join(", ")}, which the rehearsal has not started before it`);
    const image = d.images.get(c.imageInput);
    if (!image) throw new Error(`${c.resourceName}: image input ${c.imageInput} comes from no image resource of the stack`);
    const mounts = (c.create.HostConfig.Mounts ?? []).map((m: any) => {
        if (m.Type !== "bind") return m;
        const dir = bindScratchDir(scratch, c.resourceName, m.Source);
        mkdirSync(dir, { recursive: true });
        return { ...m, Source: dir };
    });
    const ulimits = c.create.HostConfig.Ulimits?.map((u: { Name: string; Soft: number; Hard: number }) => clampUlimit(u, log, c.create.name));
    const create = { ...c.create, Labels: { ...c.create.Labels, [REHEARSAL_LABEL]: d.owner }, Image: image, Env: [...(c.create.Env ?? []), ...extraEnv], HostConfig: { ...c.create.HostConfig, Mounts: mounts, Ulimits: ulimits } };
    const container = await docker.createContainer(create);
    const deployed: DeployedContainer = { plan: c, name: c.create.name, id: container.id };
    d.containers.push(deployed);
    for (const n of c.networks.slice(1)) await docker.getNetwork(n.name).connect({ Container: container.id, EndpointConfig: { Aliases: n.aliases } });
    for (const a of uploadArchives(c.uploads, mounts.map((m: { Target: string }) => m.Target), c.create.HostConfig.ReadonlyRootfs === true)) await container.putArchive(a.archive, { path: a.path });
    await container.start();
    if (!c.runToExit) return deployed;
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
        container.wait() as Promise<{ StatusCode: number }>,
        new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), RUN_TO_EXIT_TIMEOUT_MS))),
    ]).finally(() => clearTimeout(timer));
    const logs = await containerLogs(docker, container.id);
    if (exit === undefined) throw new Error(`${c.create.name}: a one-shot container still running after ${RUN_TO_EXIT_TIMEOUT_MS / 1000} s; logs: ${logs || "(none)"}`);
    if (exit.StatusCode !== 0) throw new Error(`${c.create.name}: a one-shot container exited with status ${exit.StatusCode}, so what depends on it was not started; logs: ${logs || "(none)"}`);
    if (c.keepLogs) for (const line of logs.split("\n")) log(`rehearse: ${c.create.name} (exit 0): ${line}`);
    return deployed;
}

/** Role label of the model-store and volume checks (components/model-store): run before anything else. */
export const CHECK_ROLE = "model-store-check";

/** A check container that ran to exit 0, with what it printed (the probe's report). */
export interface CheckRun {
    readonly container: DeployedContainer;
    readonly logs: string;
}

/**
 * The check containers first, then the rest, each group in the program's order. The checks depend
 * only on images and volumes (or on each other: provisioning before its check), so this is an
 * order the provider could take too, and the verdict on their real output comes before any
 * consumer exists.
 */
export function checksFirst(containers: readonly ContainerPlan[]): { checks: ContainerPlan[]; rest: ContainerPlan[] } {
    const checks = containers.filter((c) => c.role === CHECK_ROLE);
    const names = new Set(checks.map((c) => c.resourceName));
    for (const c of checks) {
        const others = c.dependsOn.filter((dep) => !names.has(dep) && containers.some((x) => x.resourceName === dep));
        if (others.length) throw new Error(`${c.resourceName}: a check that depends on ${others.join(", ")}; the rehearsal runs the checks before every other container`);
    }
    return { checks, rest: containers.filter((c) => !names.has(c.resourceName)) };
}

/**
 * Creates everything in the plan, in dependency order: images, networks, volumes, the check
 * containers (then `afterChecks` with their output, which may refuse), then every other container
 * in the program's order, a one-shot run to exit 0 before the next. `scratch` holds the stand-in
 * directories for bind mounts (the operator's encrypted store does not exist here). On any
 * failure, everything labelled with `owner` is removed.
 */
export async function deploy(
    plan: RehearsalPlan,
    owner: string,
    scratch: string,
    extraEnv: Record<string, string[]>,
    log: (line: string) => void,
    afterChecks: (runs: CheckRun[]) => Promise<void> = async () => undefined,
): Promise<Deployed> {
    const docker = new Docker();
    const prepared = await prepareImages(docker, plan, log);
    const d: Deployed = { docker, owner, containers: [], networks: [], volumes: [], images: prepared.images, tags: prepared.tags, imageSeconds: prepared.seconds };
    const owned = { [REHEARSAL_LABEL]: owner };
    try {
        for (const n of plan.networks) {
            await docker.createNetwork({ ...n.create, Labels: { ...n.create.Labels, ...owned } } as Docker.NetworkCreateOptions);
            d.networks.push(n.create.Name);
        }
        for (const v of plan.volumes) {
            await docker.createVolume({ ...v.create, Labels: { ...v.create.Labels, ...owned } });
            d.volumes.push(v.create.Name);
        }
        const ready = new Set<string>();
        const start = async (c: ContainerPlan) => {
            const container = await startContainer(d, c, scratch, extraEnv[c.resourceName] ?? [], ready, log);
            ready.add(c.resourceName);
            return container;
        };
        const { checks, rest } = checksFirst(plan.containers);
        const runs: CheckRun[] = [];
        for (const c of checks) {
            const container = await start(c);
            runs.push({ container, logs: await containerLogs(docker, container.id) });
        }
        if (runs.length) await afterChecks(runs);
        for (const c of rest) await start(c);
        return d;
    } catch (e) {
        await teardown(d);
        throw e;
    }
}

/**
 * `pulumi up` of a changed container: a one-shot is replaced create-before-delete (the new one,
 * under its new name, runs to exit 0 before the old one is removed, as Pulumi replaces it); a
 * service with a fixed name is removed, then created again.
 */
export async function replaceContainer(d: Deployed, old: DeployedContainer, next: ContainerPlan, scratch: string, log: (line: string) => void): Promise<void> {
    const ready = new Set(d.containers.map((c) => c.plan.resourceName));
    const drop = async () => {
        await d.docker.getContainer(old.id).remove({ force: true, v: true });
        d.containers.splice(d.containers.indexOf(old), 1);
    };
    if (!next.runToExit || next.create.name === old.name) await drop();
    await startContainer(d, next, scratch, [], ready, log);
    if (d.containers.includes(old)) await drop();
}

/** Removes every container, volume and network labelled with this stack name, in that order. */
export async function removeByLabel(owner: string, log: (line: string) => void = () => undefined): Promise<void> {
    const docker = new Docker();
    const filters = JSON.stringify({ label: [`${REHEARSAL_LABEL}=${owner}`] });
    for (const c of await docker.listContainers({ all: true, filters })) {
        await docker.getContainer(c.Id).remove({ force: true, v: true }).catch((e) => log(`rehearse: could not remove container ${c.Names.join(",")}: ${(e as Error).message}`));
    }
    for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) {
        await docker.getVolume(v.Name).remove().catch((e) => log(`rehearse: could not remove volume ${v.Name}: ${(e as Error).message}`));
    }
    for (const n of await docker.listNetworks({ filters })) {
        await docker.getNetwork(n.Id).remove().catch((e) => log(`rehearse: could not remove network ${n.Name}: ${(e as Error).message}`));
    }
}

/** Removes what `deploy` created (by its label, so a container created half-way goes too) and the tags it added. */
export async function teardown(d: Deployed): Promise<void> {
    await removeByLabel(d.owner);
    for (const t of d.tags) await d.docker.getImage(t).remove({ noprune: true }).catch(() => undefined);
}

/** A healthcheck whose program is missing from the image can never pass: no point waiting for it. */
async function someCheckCannotRun(d: Deployed, names: string[]): Promise<boolean> {
    for (const c of d.containers.filter((x) => names.includes(x.name))) {
        const out = (await d.docker.getContainer(c.id).inspect()).State.Health?.Log?.at(-1)?.Output ?? "";
        if (/OCI runtime exec failed|executable file not found/.test(out)) return true;
    }
    return false;
}

/**
 * Waits until every service (every container but the one-shots, which already exited 0) is
 * healthy by its own healthcheck; throws naming the ones that are not, with their last check
 * and logs. "unhealthy" is not final (a check that timed out on a loaded machine passes later):
 * only an exited service or the deadline ends the wait early.
 */
export async function waitHealthy(d: Deployed, timeoutMs: number): Promise<Record<string, string>> {
    const deadline = Date.now() + timeoutMs;
    const services = () => d.containers.filter((c) => !c.plan.runToExit);
    for (;;) {
        const states: Record<string, string> = {};
        for (const c of services()) {
            const info = await d.docker.getContainer(c.id).inspect();
            states[c.name] = info.State.Running ? (info.State.Health?.Status ?? "running without a healthcheck") : `exited ${info.State.ExitCode}`;
        }
        const pending = Object.entries(states).filter(([, s]) => s !== "healthy");
        if (pending.length === 0) return states;
        if (Date.now() > deadline || pending.some(([, s]) => s.startsWith("exited")) || (await someCheckCannotRun(d, pending.map(([n]) => n)))) {
            const details = await Promise.all(
                pending.map(async ([name]) => {
                    const c = services().find((x) => x.name === name)!;
                    const info = await d.docker.getContainer(c.id).inspect();
                    const last = info.State.Health?.Log?.at(-1)?.Output?.trim().slice(0, 300);
                    const logs = (await containerLogs(d.docker, c.id, 5)).slice(-400);
                    return `${name}: ${states[name]}${last ? ` (last check: ${last})` : ""}${logs ? ` (logs: ${logs})` : ""}`;
                }),
            );
            throw new Error(`not healthy: ${details.join("; ")}`);
        }
        await new Promise((r) => setTimeout(r, 1000));
    }
}
